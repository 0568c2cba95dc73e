//! `jsonb` ↔ `serde_json::Value` without going through text.
//!
//! pgrx's `JsonB` (and this crate's `JsonArg` until 0.2.0) crossed the boundary as text both
//! ways: `jsonb_out` printed the argument, `serde_json` parsed it, and the result was printed by
//! `serde_json` and parsed again by `jsonb_in`. For a small function such as `news2` that was
//! most of the call (docs/benchmarks.md). Here the argument is read by walking the binary
//! `jsonb` with Postgres's own iterator, and the result is built with `pushJsonbValue`, so no
//! document is printed or parsed. Numbers keep their exact text (`numeric_out` / `numeric_in`),
//! so `Value`s are the same as the text path produced: `decode_bounded`'s limits hold (size in
//! bytes of the stored `jsonb`, depth, numbers out of `f64` range are an error).

use careplane_rules::json::{MAX_BYTES, MAX_DEPTH};
use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::{direct_function_call, direct_function_call_as_datum, pg_sys, IntoDatum};
use serde_json::{Map, Number, Value};
use std::ffi::CString;

use pg_sys::JsonbIteratorToken::{
    WJB_BEGIN_ARRAY, WJB_BEGIN_OBJECT, WJB_DONE, WJB_ELEM, WJB_END_ARRAY, WJB_END_OBJECT, WJB_KEY, WJB_VALUE,
};

/// Declares that a careplane type is `jsonb` in SQL, as an argument and as a result (the
/// argument and result types of this module and of `json_arg`).
macro_rules! sql_jsonb {
    ($t:ident) => {
        unsafe impl pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for $t {
            const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!($t);
            const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
                pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
            const ARGUMENT_SQL: Result<
                pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
                pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
            > = Ok(pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal("jsonb"));
            const RETURN_SQL: Result<
                pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
                pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
            > = Ok(pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef::One(
                pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal("jsonb"),
            ));
        }
    };
}
pub(crate) use sql_jsonb;


/// Reads a detoasted `jsonb` into a `Value`: the reason when it is larger than [`MAX_BYTES`],
/// nested deeper than [`MAX_DEPTH`], or holds a number `serde_json` cannot represent.
///
/// # Safety
/// `jsonb` points to a detoasted `jsonb` value that stays valid for the call.
pub unsafe fn read(jsonb: *mut pg_sys::Jsonb) -> Result<Value, String> {
    let size = unsafe { pgrx::varlena::varsize_any_exhdr(jsonb.cast()) };
    if size > MAX_BYTES {
        return Err(format!("is {size} bytes of JSON; at most {MAX_BYTES} are accepted"));
    }
    // Containers being filled, innermost last, each with the key its value goes under.
    enum Open {
        Array(Vec<Value>, bool),
        Object(Map<String, Value>, Option<String>),
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut it = unsafe { pg_sys::JsonbIteratorInit(&mut (*jsonb).root) };
    let mut v = pg_sys::JsonbValue::default();
    let mut done: Option<Value> = None;
    loop {
        let token = unsafe { pg_sys::JsonbIteratorNext(&mut it, &mut v, false) };
        let finished = match token {
            WJB_DONE => break,
            WJB_BEGIN_ARRAY => {
                stack.push(Open::Array(Vec::new(), unsafe { v.val.array.rawScalar }));
                if stack.len() > MAX_DEPTH {
                    return Err(format!("is nested more than {MAX_DEPTH} levels deep"));
                }
                None
            }
            WJB_BEGIN_OBJECT => {
                stack.push(Open::Object(Map::new(), None));
                if stack.len() > MAX_DEPTH {
                    return Err(format!("is nested more than {MAX_DEPTH} levels deep"));
                }
                None
            }
            WJB_KEY => {
                let key = unsafe { string(&v) }?;
                if let Some(Open::Object(_, pending)) = stack.last_mut() {
                    *pending = Some(key);
                }
                None
            }
            WJB_VALUE | WJB_ELEM => Some(unsafe { scalar(&v) }?),
            WJB_END_ARRAY => match stack.pop() {
                // A top-level scalar is stored as a one-element "raw scalar" array.
                Some(Open::Array(mut items, true)) => Some(items.pop().unwrap_or(Value::Null)),
                Some(Open::Array(items, false)) => Some(Value::Array(items)),
                _ => return Err("is not a well-formed jsonb value".to_owned()),
            },
            WJB_END_OBJECT => match stack.pop() {
                Some(Open::Object(map, _)) => Some(Value::Object(map)),
                _ => return Err("is not a well-formed jsonb value".to_owned()),
            },
            _ => return Err("is not a well-formed jsonb value".to_owned()),
        };
        if let Some(value) = finished {
            match stack.last_mut() {
                None => done = Some(value),
                Some(Open::Array(items, _)) => items.push(value),
                Some(Open::Object(map, pending)) => {
                    let key = pending.take().ok_or_else(|| "is not a well-formed jsonb value".to_owned())?;
                    map.insert(key, value);
                }
            }
        }
    }
    done.ok_or_else(|| "is not a well-formed jsonb value".to_owned())
}

unsafe fn string(v: &pg_sys::JsonbValue) -> Result<String, String> {
    let s = unsafe { v.val.string };
    let bytes = if s.len == 0 {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(s.val.cast::<u8>(), s.len as usize) }
    };
    String::from_utf8(bytes.to_vec()).map_err(|_| "is not valid UTF-8".to_owned())
}

unsafe fn scalar(v: &pg_sys::JsonbValue) -> Result<Value, String> {
    Ok(match v.type_ {
        pg_sys::jbvType::jbvNull => Value::Null,
        pg_sys::jbvType::jbvBool => Value::Bool(unsafe { v.val.boolean }),
        pg_sys::jbvType::jbvString => Value::String(unsafe { string(v) }?),
        pg_sys::jbvType::jbvNumeric => {
            let numeric = unsafe { v.val.numeric };
            let text = unsafe {
                direct_function_call::<&core::ffi::CStr>(pg_sys::numeric_out, &[Some(pg_sys::Datum::from(numeric))])
            }
            .ok_or_else(|| "is not JSON careplane can read: a number without a value".to_owned())?;
            let parsed = text.to_str().ok().and_then(|t| t.parse::<Number>().ok());
            unsafe { pg_sys::pfree(text.as_ptr() as *mut core::ffi::c_void) };
            // As serde_json does for text: a number out of f64 range (1e400) is refused.
            Value::Number(parsed.ok_or_else(|| "is not JSON careplane can read: number out of range".to_owned())?)
        }
        _ => return Err("is not a well-formed jsonb value".to_owned()),
    })
}

/// A `jsonb` result built directly from a `Value` (no text in between). Used in place of
/// pgrx's `JsonB` as the return type of every careplane function returning `jsonb`.
pub struct Jsonb(pub Value);

impl Jsonb {
    /// The value as a `jsonb` datum, in the current memory context.
    pub(crate) fn to_datum(&self) -> pg_sys::Datum {
        let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
        let result = unsafe {
            match &self.0 {
                Value::Array(_) | Value::Object(_) => push(&mut state, &self.0),
                scalar => {
                    // A top-level scalar is a one-element raw-scalar array, as jsonb_in makes it.
                    let mut open = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvArray, ..Default::default() };
                    open.val.array.rawScalar = true;
                    pg_sys::pushJsonbValue(&mut state, WJB_BEGIN_ARRAY, &mut open);
                    let mut s = to_scalar(scalar);
                    pg_sys::pushJsonbValue(&mut state, WJB_ELEM, &mut s);
                    pg_sys::pushJsonbValue(&mut state, WJB_END_ARRAY, std::ptr::null_mut())
                }
            }
        };
        pg_sys::Datum::from(unsafe { pg_sys::JsonbValueToJsonb(result) })
    }
}

/// Pushes a container and what it holds; returns what `pushJsonbValue` returns for its closing
/// token (the finished value when it is the outermost).
unsafe fn push(state: &mut *mut pg_sys::JsonbParseState, v: &Value) -> *mut pg_sys::JsonbValue {
    unsafe {
        match v {
            Value::Object(map) => {
                pg_sys::pushJsonbValue(state, WJB_BEGIN_OBJECT, std::ptr::null_mut());
                for (k, item) in map {
                    let mut key = string_value(k);
                    pg_sys::pushJsonbValue(state, WJB_KEY, &mut key);
                    push_item(state, item, WJB_VALUE);
                }
                pg_sys::pushJsonbValue(state, WJB_END_OBJECT, std::ptr::null_mut())
            }
            Value::Array(items) => {
                pg_sys::pushJsonbValue(state, WJB_BEGIN_ARRAY, std::ptr::null_mut());
                for item in items {
                    push_item(state, item, WJB_ELEM);
                }
                pg_sys::pushJsonbValue(state, WJB_END_ARRAY, std::ptr::null_mut())
            }
            _ => unreachable!("push is called with a container"),
        }
    }
}

/// Pushes one member of a container: `token` is `WJB_VALUE` in an object, `WJB_ELEM` in an array.
unsafe fn push_item(state: &mut *mut pg_sys::JsonbParseState, item: &Value, token: pg_sys::JsonbIteratorToken::Type) {
    unsafe {
        match item {
            Value::Array(_) | Value::Object(_) => {
                push(state, item);
            }
            scalar => {
                let mut s = to_scalar(scalar);
                pg_sys::pushJsonbValue(state, token, &mut s);
            }
        }
    }
}

/// A string `JsonbValue` whose bytes are copied into the current memory context.
fn string_value(s: &str) -> pg_sys::JsonbValue {
    let mut v = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvString, ..Default::default() };
    unsafe {
        let buf = pg_sys::palloc(s.len().max(1)).cast::<u8>();
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf, s.len());
        v.val.string.val = buf.cast();
        v.val.string.len = i32::try_from(s.len()).expect("careplane results are far below 1 GB");
    }
    v
}

fn to_scalar(v: &Value) -> pg_sys::JsonbValue {
    match v {
        Value::Null => pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvNull, ..Default::default() },
        Value::Bool(b) => {
            let mut out = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvBool, ..Default::default() };
            out.val.boolean = *b;
            out
        }
        Value::String(s) => string_value(s),
        Value::Number(n) => {
            let numeric = match n.as_i64() {
                Some(i) => unsafe { pg_sys::int64_to_numeric(i) },
                None => {
                    // The shortest text that reads back as the same f64 (or the u64), as serde prints it.
                    let text = CString::new(n.to_string()).expect("a number has no NUL");
                    let datum = unsafe {
                        direct_function_call_as_datum(
                            pg_sys::numeric_in,
                            &[Some(pg_sys::Datum::from(text.as_ptr())), pg_sys::InvalidOid.into_datum(), (-1i32).into_datum()],
                        )
                    }
                    .expect("numeric_in returns a value");
                    datum.cast_mut_ptr()
                }
            };
            let mut out = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvNumeric, ..Default::default() };
            out.val.numeric = numeric;
            out
        }
        Value::Array(_) | Value::Object(_) => unreachable!("to_scalar is called with a scalar"),
    }
}

impl IntoDatum for Jsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.to_datum())
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

unsafe impl BoxRet for Jsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(self.to_datum()) }
    }
}

sql_jsonb!(Jsonb);

/// A `jsonb` result already encoded (by [`crate::binary::encode`]).
pub struct JsonbDatumResult(pub pg_sys::Datum);

impl IntoDatum for JsonbDatumResult {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

unsafe impl BoxRet for JsonbDatumResult {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

sql_jsonb!(JsonbDatumResult);
