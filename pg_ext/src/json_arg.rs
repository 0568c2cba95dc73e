//! `JsonArg`: a `jsonb` argument decoded without panicking.
//!
//! pgrx's own `JsonB` argument prints the value and parses it with `serde_json`, and panics when that fails —
//! a number such as `1e400` (out of `f64` range) or JSON nested more deeply than serde_json's
//! recursion limit — and a panic surfaces as `XX000` (HTTP 500). Every careplane function that
//! takes JSON takes a `JsonArg` instead and calls [`JsonArg::value`], which answers `22023`
//! naming the argument. The value is read straight from the binary `jsonb` ([`crate::jsonb::read`]),
//! within the bounds `careplane_rules::json::decode_bounded` sets for text.

use careplane_rules::json::{invalid, InputError};
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::pg_sys;
use pgrx::FromDatum;
use serde_json::Value;

/// The argument ABI of a type read with `FromDatum`, for functions declared `strict` (Postgres
/// never calls them with a null).
macro_rules! strict_arg {
    ($t:ident) => {
        unsafe impl<'fcx> ArgAbi<'fcx> for $t {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum().unwrap_or_else(|| panic!("argument {index} must not be null")) }
            }
        }
    };
}


/// A decoded `jsonb` argument, or why it could not be decoded.
#[derive(Debug)]
pub struct JsonArg(Result<Value, String>);

impl JsonArg {
    /// The value, or `22023`-ready error naming `arg`.
    pub fn value(&self, arg: &str) -> Result<&Value, InputError> {
        self.0.as_ref().map_err(|reason| invalid(arg, reason.clone()))
    }
}

impl FromDatum for JsonArg {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        // Read from the binary jsonb (crate::jsonb): no text in between, and an error is
        // kept, not panicked on.
        unsafe {
            let varlena = datum.cast_mut_ptr();
            // Not the packed form: `Jsonb` has a 4-byte header (as DatumGetJsonbP gives it).
            let detoasted = pg_sys::pg_detoast_datum(varlena);
            let decoded = crate::jsonb::read(detoasted.cast());
            if detoasted != varlena {
                pg_sys::pfree(detoasted as *mut core::ffi::c_void);
            }
            Some(JsonArg(decoded))
        }
    }
}

strict_arg!(JsonArg);

crate::jsonb::sql_jsonb!(JsonArg);

/// A `jsonb` argument kept in its binary form, for the functions that read it directly
/// ([`crate::binary`]) and fall back to [`JsonbDatum::value`] (the general reader, the same as
/// [`JsonArg`]) for whatever the direct reader leaves to it.
pub struct JsonbDatum {
    /// The detoasted value (4-byte header).
    ptr: *mut pg_sys::varlena,
    /// Whether `ptr` is a copy made by detoasting (freed on drop).
    copied: bool,
}

impl JsonbDatum {
    /// The `jsonb` container's bytes (after the varlena header).
    pub fn container(&self) -> &[u8] {
        unsafe {
            let size = pgrx::varlena::varsize_any_exhdr(self.ptr);
            std::slice::from_raw_parts(pgrx::varlena::vardata_any(self.ptr).cast::<u8>(), size)
        }
    }

    /// The value read the general way, or the 22023-ready error naming `arg`.
    pub fn value(&self, arg: &str) -> Result<Value, InputError> {
        unsafe { crate::jsonb::read(self.ptr.cast()) }.map_err(|reason| invalid(arg, reason))
    }
}

impl Drop for JsonbDatum {
    fn drop(&mut self) {
        if self.copied {
            unsafe { pg_sys::pfree(self.ptr.cast()) };
        }
    }
}

impl FromDatum for JsonbDatum {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        unsafe {
            let varlena = datum.cast_mut_ptr::<pg_sys::varlena>();
            // A value with a 4-byte header, neither compressed nor external (what a row of a
            // few hundred bytes holds), is read in place without a call into Postgres.
            if *varlena.cast::<u8>() & 0x03 == 0 {
                return Some(JsonbDatum { ptr: varlena, copied: false });
            }
            let ptr = pg_sys::pg_detoast_datum(varlena);
            Some(JsonbDatum { ptr, copied: ptr != varlena })
        }
    }
}

strict_arg!(JsonbDatum);

crate::jsonb::sql_jsonb!(JsonbDatum);
