//! Great-circle distance, for routing responders.

/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    #[error("{field} must be a finite number between {min} and {max}, got {value}")]
    OutOfRange { field: &'static str, min: f64, max: f64, value: f64 },
}

fn check(field: &'static str, value: f64, limit: f64) -> Result<f64, GeoError> {
    if value.is_finite() && (-limit..=limit).contains(&value) {
        Ok(value)
    } else {
        Err(GeoError::OutOfRange { field, min: -limit, max: limit, value })
    }
}

/// Haversine distance in kilometres between two points given in degrees.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> Result<f64, GeoError> {
    let (lat1, lat2) = (check("lat1", lat1, 90.0)?, check("lat2", lat2, 90.0)?);
    let (lon1, lon2) = (check("lon1", lon1, 180.0)?, check("lon2", lon2, 180.0)?);
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    Ok(2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lagos_to_accra_is_about_400_km() {
        let d = distance_km(6.5244, 3.3792, 5.6037, -0.1870).unwrap();
        assert!((d - 408.0).abs() < 5.0, "{d}");
    }

    #[test]
    fn antipodes_and_same_point() {
        assert_eq!(distance_km(1.0, 2.0, 1.0, 2.0).unwrap(), 0.0);
        let half = distance_km(0.0, 0.0, 0.0, 180.0).unwrap();
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }

    #[test]
    fn out_of_range_coordinates_are_errors() {
        assert!(matches!(distance_km(91.0, 0.0, 0.0, 0.0), Err(GeoError::OutOfRange { field: "lat1", .. })));
        assert!(matches!(distance_km(0.0, 0.0, 0.0, f64::NAN), Err(GeoError::OutOfRange { field: "lon2", .. })));
    }
}
