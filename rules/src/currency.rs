//! ISO 4217 currencies and their minor-unit exponents.
//!
//! careplane stores every amount as an integer number of minor units (kobo, cents, fils…), so
//! the exponent of a currency is what turns `150000` NGN into "1,500.00". A currency the table
//! does not know is an error, never a guess of 2: a wrong exponent misprices by a factor of 10
//! or 100.

use std::fmt;

/// An ISO 4217 alphabetic code that careplane knows the exponent of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("currency code {0:?} is not three upper-case letters (ISO 4217, e.g. \"NGN\")")]
    Malformed(String),
    #[error("currency {0:?} is not a supported ISO 4217 currency")]
    Unknown(String),
}

/// ISO 4217 codes with their minor-unit exponents (ISO 4217 table A.1). Sorted by code, so
/// lookups are a binary search and a test proves the order.
const TABLE: &[(&str, u8)] = &[
    ("AED", 2), ("AOA", 2), ("AUD", 2), ("BHD", 3), ("BIF", 0), ("BRL", 2), ("BWP", 2),
    ("CAD", 2), ("CDF", 2), ("CHF", 2), ("CLP", 0), ("CNY", 2), ("DJF", 0), ("DKK", 2),
    ("DZD", 2), ("EGP", 2), ("ETB", 2), ("EUR", 2), ("GBP", 2), ("GHS", 2), ("GMD", 2),
    ("GNF", 0), ("INR", 2), ("IQD", 3), ("ISK", 0), ("JOD", 3), ("JPY", 0), ("KES", 2),
    ("KMF", 0), ("KRW", 0), ("KWD", 3), ("LRD", 2), ("LYD", 3), ("MAD", 2), ("MUR", 2),
    ("MWK", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NOK", 2), ("NZD", 2), ("OMR", 3),
    ("PYG", 0), ("RWF", 0), ("SAR", 2), ("SEK", 2), ("SLE", 2), ("SZL", 2), ("TND", 3),
    ("TZS", 2), ("UGX", 0), ("USD", 2), ("VND", 0), ("VUV", 0), ("XAF", 0), ("XOF", 0),
    ("XPF", 0), ("ZAR", 2), ("ZMW", 2),
];

impl Currency {
    /// Looks a code up. The code must already be upper case: "ngn" is rejected rather than
    /// silently normalised, so what is stored is what was validated.
    pub fn parse(code: &str) -> Result<Self, CurrencyError> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(CurrencyError::Malformed(code.to_owned()));
        }
        TABLE
            .binary_search_by(|(c, _)| (*c).cmp(code))
            .map(|i| Currency { code: TABLE[i].0, exponent: TABLE[i].1 })
            .map_err(|_| CurrencyError::Unknown(code.to_owned()))
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Number of decimal digits of the minor unit: 2 for NGN (kobo), 0 for JPY, 3 for KWD.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Formats an amount of minor units as a decimal string in major units: `150050` NGN is
    /// `"1500.50"`, `-5` KWD is `"-0.005"`, `700` JPY is `"700"`.
    pub fn format_minor(&self, minor: i64) -> String {
        let exp = u32::from(self.exponent);
        if exp == 0 {
            return minor.to_string();
        }
        let scale = 10u64.pow(exp);
        let abs = minor.unsigned_abs();
        let sign = if minor < 0 { "-" } else { "" };
        format!("{sign}{}.{:0width$}", abs / scale, abs % scale, width = exp as usize)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_is_sorted_and_unique_so_binary_search_is_valid() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn exponents_match_iso_4217() {
        for (code, exp) in [
            ("NGN", 2), ("GHS", 2), ("ZAR", 2), ("KES", 2), ("USD", 2), ("EUR", 2),
            ("JPY", 0), ("XOF", 0), ("RWF", 0), ("UGX", 0), ("BHD", 3), ("KWD", 3), ("OMR", 3),
        ] {
            assert_eq!(Currency::parse(code).unwrap().exponent(), exp, "{code}");
        }
    }

    #[test]
    fn lower_case_code_is_malformed_not_normalised() {
        assert_eq!(Currency::parse("ngn"), Err(CurrencyError::Malformed("ngn".into())));
        assert_eq!(Currency::parse("NGNX"), Err(CurrencyError::Malformed("NGNX".into())));
        assert_eq!(Currency::parse(""), Err(CurrencyError::Malformed(String::new())));
    }

    #[test]
    fn unknown_code_is_an_error_not_a_default_exponent() {
        assert_eq!(Currency::parse("XXX"), Err(CurrencyError::Unknown("XXX".into())));
    }

    #[test]
    fn formats_minor_units_with_the_currency_exponent() {
        let ngn = Currency::parse("NGN").unwrap();
        assert_eq!(ngn.format_minor(150_050), "1500.50");
        assert_eq!(ngn.format_minor(5), "0.05");
        assert_eq!(Currency::parse("KWD").unwrap().format_minor(-5), "-0.005");
        assert_eq!(Currency::parse("JPY").unwrap().format_minor(700), "700");
        assert_eq!(ngn.format_minor(i64::MIN), "-92233720368547758.08");
    }

    proptest! {
        #[test]
        fn formatting_round_trips_through_the_exponent(minor in any::<i64>(), i in 0..TABLE.len()) {
            let c = Currency::parse(TABLE[i].0).unwrap();
            let s = c.format_minor(minor);
            let digits: String = s.chars().filter(|ch| *ch != '.').collect();
            prop_assert_eq!(digits.parse::<i128>().unwrap(), i128::from(minor));
            let decimals = s.split_once('.').map_or(0, |(_, d)| d.len());
            prop_assert_eq!(decimals, usize::from(c.exponent()));
        }
    }
}
