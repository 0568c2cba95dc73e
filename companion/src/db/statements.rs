//! Splitting a SQL file into statements, the way the Supabase CLI records them in
//! `supabase_migrations.schema_migrations.statements`.
//!
//! A small lexer, not a parser: it knows enough of PostgreSQL's lexical rules to find the
//! semicolons that end statements — quoted identifiers, string constants (including `E''`
//! escapes), dollar-quoted bodies, line comments and nested block comments, and
//! `BEGIN ATOMIC … END` bodies of SQL-standard functions.

/// Splits `sql` into statements, trimmed, without their terminating `;`, empty ones dropped.
pub fn split(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut atomic_depth = 0usize;
    let mut word = String::new();
    let mut prev_word = String::new();
    while i < b.len() {
        let c = b[i];
        // Track words to recognise `BEGIN ATOMIC` … `END`.
        if c.is_ascii_alphanumeric() || c == b'_' {
            word.push(c.to_ascii_lowercase() as char);
            i += 1;
            continue;
        }
        if !word.is_empty() {
            // `case … end` inside an atomic body must not close it.
            if (prev_word == "begin" && word == "atomic") || (word == "case" && atomic_depth > 0) {
                atomic_depth += 1;
            } else if word == "end" && atomic_depth > 0 {
                atomic_depth -= 1;
            }
            prev_word = std::mem::take(&mut word);
        }
        match c {
            b'\'' => i = skip_quoted(b, i, b'\'', i > 0 && matches!(b[i - 1], b'e' | b'E')),
            b'"' => i = skip_quoted(b, i, b'"', false),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            b'$' => i = skip_dollar(b, i),
            b';' if atomic_depth == 0 => {
                push(&mut out, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut out, &sql[start..]);
    out
}

fn push(out: &mut Vec<String>, stmt: &str) {
    if !is_only_comments(stmt) {
        out.push(stmt.trim().to_owned());
    }
}

/// True when `stmt` holds nothing but whitespace and comments.
fn is_only_comments(stmt: &str) -> bool {
    let b = stmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            _ => return false,
        }
    }
    true
}

/// From the opening quote at `i`, returns the index after the closing one. A doubled quote
/// is an escaped quote; with `backslash`, `\'` is too.
fn skip_quoted(b: &[u8], i: usize, q: u8, backslash: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

fn skip_block_comment(b: &[u8], i: usize) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j + 1 < b.len() {
        if b[j] == b'/' && b[j + 1] == b'*' {
            depth += 1;
            j += 2;
        } else if b[j] == b'*' && b[j + 1] == b'/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// `$tag$ … $tag$` (tag possibly empty). A `$` that does not open a dollar quote (`$1`) is
/// stepped over.
fn skip_dollar(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    let tag_is_valid = j < b.len() && b[j] == b'$' && !b.get(i + 1).is_some_and(|c| c.is_ascii_digit());
    if !tag_is_valid {
        return i + 1;
    }
    let tag = &b[i..=j];
    let body = j + 1;
    match b[body..].windows(tag.len()).position(|w| w == tag) {
        Some(p) => body + p + tag.len(),
        None => b.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = r#"
            -- a comment; with a semicolon
            create table "we;ird" (t text default 'a;b''c');
            /* block; /* nested; */ still comment; */
            create function f() returns int language plpgsql as $body$
            begin
              perform 1; return $1;
            end $body$;
            select E'it\'s; fine', $$x;y$$;
            create function g() returns int language sql begin atomic select 1; select case when true then 2 end; end;
            ;
        "#;
        let got = split(sql);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[0].starts_with("-- a comment; with a semicolon\n"));
        assert!(got[0].ends_with("default 'a;b''c')"));
        assert!(got[1].contains("perform 1; return $1;"));
        assert!(got[2].contains("$$x;y$$"));
        assert!(got[3].ends_with("then 2 end; end"));
    }

    #[test]
    fn trailing_statement_without_semicolon_is_kept_and_comment_only_tail_dropped() {
        assert_eq!(split("select 1; select 2"), vec!["select 1", "select 2"]);
        assert_eq!(split("select 1; -- done\n"), vec!["select 1"]);
        assert!(split("  -- nothing\n/* here */ ").is_empty());
    }
}
