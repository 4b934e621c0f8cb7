//! Disk sizing: Kubernetes quantities as bytes, and the pump's stop-write threshold sized for its
//! volume.
//!
//! The pump refuses writes while its data volume has less free space than
//! `[storage] stop-write-at-available-space`, 10 GiB by default. On a volume of 10 GiB or less that
//! default refuses every write (TiDB then fails with "no available pump"). Unless the user sets a
//! value, the operator writes **min(10 GiB, 10% of the volume)** instead:
//!
//! | volume | threshold |
//! |---|---|
//! | 1 GiB | 102.4 MiB |
//! | 20 GiB | 2 GiB |
//! | 100 GiB and more | 10 GiB |

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

const GIB: u64 = 1 << 30;

/// The pump's built-in threshold, and the cap of the operator's default.
pub const PUMP_STOP_WRITE_CAP: u64 = 10 * GIB;

/// The stop-write threshold for a volume of `volume_bytes`: min(10 GiB, 10% of the volume).
pub fn default_stop_write_at_available_space(volume_bytes: u64) -> u64 {
    (volume_bytes / 10).min(PUMP_STOP_WRITE_CAP)
}

/// A quantity that is not a byte count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {value:?}: {reason}")]
pub struct InvalidQuantity {
    pub value: String,
    pub reason: &'static str,
}

/// Bytes in a Kubernetes quantity (`50Gi`, `100G`, `1.5Ti`, `1e9`, `1048576`), rounded down.
pub fn quantity_bytes(quantity: &Quantity) -> Result<u64, InvalidQuantity> {
    let text = quantity.0.trim();
    let invalid = |reason| InvalidQuantity {
        value: quantity.0.clone(),
        reason,
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || text.starts_with('-') {
        return Err(invalid("expected a non-negative number followed by a unit"));
    }
    let number: f64 = number
        .parse()
        .map_err(|_| invalid("expected a non-negative number followed by a unit"))?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "m" => 1e-3,
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..]
                .parse()
                .map_err(|_| invalid("bad decimal exponent"))?;
            10f64.powi(power)
        }
        _ => return Err(invalid("unknown unit (use Ki, Mi, Gi, Ti, k, M, G, T, …)")),
    };
    let bytes = number * multiplier;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(invalid("too large"));
    }
    Ok(bytes as u64)
}

/// A byte count as the pump config wants it (a go-humanize string): whole binary units when
/// exact (`"10 GiB"`, `"512 MiB"`), else plain bytes (`"109951162"`).
pub fn humanize_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u32); 6] = [
        ("EiB", 60),
        ("PiB", 50),
        ("TiB", 40),
        ("GiB", 30),
        ("MiB", 20),
        ("KiB", 10),
    ];
    for (unit, shift) in UNITS {
        let size = 1u64 << shift;
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity(text.to_string())
    }

    #[test]
    fn quantities_in_bytes() {
        assert_eq!(quantity_bytes(&q("50Gi")).unwrap(), 50 * GIB);
        assert_eq!(quantity_bytes(&q("100G")).unwrap(), 100_000_000_000);
        assert_eq!(quantity_bytes(&q("1.5Ti")).unwrap(), 1536 * GIB);
        assert_eq!(quantity_bytes(&q("1e9")).unwrap(), 1_000_000_000);
        assert_eq!(quantity_bytes(&q("1048576")).unwrap(), 1 << 20);
        assert!(quantity_bytes(&q("-1Gi")).is_err());
        assert!(quantity_bytes(&q("10GB")).is_err());
        assert!(quantity_bytes(&q("Gi")).is_err());
    }

    #[test]
    fn default_threshold_is_a_tenth_capped_at_ten_gib() {
        assert_eq!(default_stop_write_at_available_space(GIB), GIB / 10);
        assert_eq!(default_stop_write_at_available_space(20 * GIB), 2 * GIB);
        assert_eq!(default_stop_write_at_available_space(100 * GIB), 10 * GIB);
        assert_eq!(default_stop_write_at_available_space(4096 * GIB), 10 * GIB);
        // Always leaves most of a small volume usable.
        let small = 5 * GIB;
        assert!(default_stop_write_at_available_space(small) < small / 2);
    }

    #[test]
    fn humanized_bytes() {
        assert_eq!(humanize_bytes(10 * GIB), "10 GiB");
        assert_eq!(humanize_bytes(512 << 20), "512 MiB");
        assert_eq!(humanize_bytes(GIB / 10), "107374182");
        assert_eq!(humanize_bytes(0), "0");
    }
}
