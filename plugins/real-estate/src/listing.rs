//! Listings as the CRM stores them: RESO Data Dictionary 2.0 field names
//! (the `listing` object in `plugin.toml`), and the normalisation a value
//! from an MLS feed or an API client goes through on its way in.

use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// How a listing field's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// An exact decimal, stored as a string (feeds send JSON numbers).
    Decimal,
    Integer,
    Status,
    PropertyType,
    DateTime,
    Date,
    /// RESO's `…YN` flags (feeds send `true`, or `"Y"`/`"N"`).
    Boolean,
}

/// The listing's fields (as declared in `plugin.toml`) and their kinds.
const FIELDS: [(&str, Kind); 40] = [
    ("ListingKey", Kind::Text),
    ("UnparsedAddress", Kind::Text),
    ("City", Kind::Text),
    ("StandardStatus", Kind::Status),
    ("ListPrice", Kind::Decimal),
    ("BedroomsTotal", Kind::Integer),
    ("BathroomsTotalInteger", Kind::Integer),
    ("ListingId", Kind::Text),
    ("MlsStatus", Kind::Text),
    ("OriginalListPrice", Kind::Decimal),
    ("ClosePrice", Kind::Decimal),
    ("StreetNumber", Kind::Text),
    ("StreetName", Kind::Text),
    ("StateOrProvince", Kind::Text),
    ("PostalCode", Kind::Text),
    ("Country", Kind::Text),
    ("PropertyType", Kind::PropertyType),
    ("PropertySubType", Kind::Text),
    ("LivingArea", Kind::Decimal),
    ("LotSizeArea", Kind::Decimal),
    ("YearBuilt", Kind::Integer),
    ("GarageYN", Kind::Boolean),
    ("PoolPrivateYN", Kind::Boolean),
    ("FireplaceYN", Kind::Boolean),
    ("CoolingYN", Kind::Boolean),
    ("WaterfrontYN", Kind::Boolean),
    ("ViewYN", Kind::Boolean),
    ("NewConstructionYN", Kind::Boolean),
    ("PublicRemarks", Kind::Text),
    ("ListAgentKey", Kind::Text),
    ("ListOfficeKey", Kind::Text),
    ("BuyerAgentKey", Kind::Text),
    ("ListingContractDate", Kind::Date),
    ("OnMarketDate", Kind::Date),
    ("CloseDate", Kind::Date),
    ("ModificationTimestamp", Kind::DateTime),
    ("StatusChangeTimestamp", Kind::DateTime),
    ("DaysOnMarket", Kind::Integer),
    ("Latitude", Kind::Decimal),
    ("Longitude", Kind::Decimal),
];

/// A buyer's must-haves (the edition's `buyer_must_haves` options) and the
/// RESO flag a listing must carry for each.
pub const MUST_HAVES: [(&str, &str); 7] = [
    ("Garage", "GarageYN"),
    ("Private pool", "PoolPrivateYN"),
    ("Fireplace", "FireplaceYN"),
    ("Air conditioning", "CoolingYN"),
    ("Waterfront", "WaterfrontYN"),
    ("View", "ViewYN"),
    ("New construction", "NewConstructionYN"),
];

/// RESO `StandardStatus`: enumeration spelling and display spelling.
pub const STATUSES: [(&str, &str); 11] = [
    ("Active", "Active"),
    ("ActiveUnderContract", "Active Under Contract"),
    ("Canceled", "Canceled"),
    ("Closed", "Closed"),
    ("ComingSoon", "Coming Soon"),
    ("Delete", "Delete"),
    ("Expired", "Expired"),
    ("Hold", "Hold"),
    ("Incomplete", "Incomplete"),
    ("Pending", "Pending"),
    ("Withdrawn", "Withdrawn"),
];

/// RESO `PropertyType` values (the listing's options).
const PROPERTY_TYPES: [&str; 9] = [
    "Residential",
    "ResidentialIncome",
    "ResidentialLease",
    "Land",
    "Farm",
    "CommercialSale",
    "CommercialLease",
    "BusinessOpportunity",
    "ManufacturedInPark",
];

/// Statuses in which a listing is offered to buyers.
pub const ON_MARKET: [&str; 2] = ["Active", "ComingSoon"];

fn squash(x: &str) -> String {
    x.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The enumeration spelling of a status given in either spelling, in any
/// case, with or without spaces.
pub fn standard_status(s: &str) -> Option<&'static str> {
    let wanted = squash(s);
    STATUSES
        .iter()
        .find(|(e, d)| squash(e) == wanted || squash(d) == wanted)
        .map(|(e, _)| *e)
}

fn property_type(s: &str) -> Option<&'static str> {
    let wanted = squash(s);
    PROPERTY_TYPES.iter().find(|t| squash(t) == wanted).copied()
}

/// A custom value of a stored record.
pub fn custom<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record.get("custom")?.get(key).filter(|v| !v.is_null())
}

/// Whether a stored listing is offered to buyers.
pub fn on_market(record: &Value) -> bool {
    custom(record, "StandardStatus")
        .and_then(Value::as_str)
        .is_some_and(|s| ON_MARKET.contains(&s))
}

/// The `ListingKey` of a listing from a feed (text or a number).
pub fn key_of(raw: &Value) -> Option<String> {
    let k = match raw.get("ListingKey")? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!k.is_empty()).then_some(k)
}

/// The `ListingKey` of a stored listing.
pub fn stored_key(record: &Value) -> Option<String> {
    custom(record, "ListingKey")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A RESO `…YN` flag: `true`/`false`, or the `"Y"`/`"N"` (yes, no, 1, 0)
/// some feeds and spreadsheets send.
pub fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "1" => Some(true),
            "n" | "no" | "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// One value from a feed as the CRM takes it; `Err` says why it was dropped.
fn value_in(kind: Kind, v: &Value) -> Result<Value, String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match kind {
        Kind::Text | Kind::DateTime | Kind::Date => text(v)
            .map(Value::String)
            .ok_or_else(|| "not text".to_owned()),
        Kind::Decimal => {
            let s = text(v).ok_or_else(|| "not a number".to_owned())?;
            Decimal::from_str_exact(&s)
                .map(|_| Value::String(s))
                .map_err(|_| format!("`{}` is not an exact decimal", text(v).unwrap_or_default()))
        }
        Kind::Integer => match v {
            Value::Number(n) if n.is_i64() => Ok(v.clone()),
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| Value::from(f as i64))
                .ok_or_else(|| format!("{n} is not a whole number")),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("`{s}` is not a whole number")),
            _ => Err("not a whole number".to_owned()),
        },
        Kind::Boolean => flag(v)
            .map(Value::Bool)
            .ok_or_else(|| format!("{v} is not yes or no")),
        Kind::Status => text(v)
            .as_deref()
            .and_then(standard_status)
            .map(Value::from)
            .ok_or_else(|| format!("{v} is not a RESO StandardStatus")),
        Kind::PropertyType => text(v)
            .as_deref()
            .and_then(property_type)
            .map(Value::from)
            .ok_or_else(|| format!("{v} is not a RESO PropertyType")),
    }
}

/// A listing from a RESO feed as the listing's custom values: the fields
/// the object has (others ignored), each normalised; a value that cannot be
/// taken is left out and named in the second list.
pub fn from_reso(raw: &Value) -> (Map<String, Value>, Vec<String>) {
    let mut out = Map::new();
    let mut dropped = Vec::new();
    for (key, kind) in FIELDS {
        let Some(v) = raw.get(key) else { continue };
        if v.is_null() {
            out.insert(key.to_owned(), Value::Null);
            continue;
        }
        match value_in(kind, v) {
            Ok(x) => {
                out.insert(key.to_owned(), x);
            }
            Err(why) => dropped.push(format!("{key} dropped: {why}")),
        }
    }
    if let Some(k) = key_of(raw) {
        out.insert("ListingKey".to_owned(), Value::String(k));
    }
    (out, dropped)
}

/// Whether a stored value and an incoming one are the same (as the CRM
/// would store the incoming one).
fn same(kind: Kind, stored: Option<&Value>, incoming: &Value) -> bool {
    let Some(stored) = stored else {
        return incoming.is_null();
    };
    match kind {
        Kind::Decimal => {
            let d = |v: &Value| match v {
                Value::String(s) => Decimal::from_str_exact(s).ok(),
                Value::Number(n) => Decimal::from_str_exact(&n.to_string()).ok(),
                _ => None,
            };
            d(stored).is_some() && d(stored) == d(incoming)
        }
        Kind::DateTime => {
            let secs = |v: &Value| {
                v.as_str()
                    .and_then(parse_micros)
                    .map(|m| m.div_euclid(1_000_000))
            };
            secs(stored).is_some() && secs(stored) == secs(incoming)
        }
        _ => stored == incoming,
    }
}

/// The fields of `incoming` that differ from the stored listing's.
pub fn changes(stored: &Value, incoming: &Map<String, Value>) -> Map<String, Value> {
    FIELDS
        .iter()
        .filter_map(|(key, kind)| {
            let v = incoming.get(*key)?;
            (!same(*kind, custom(stored, key), v)).then(|| ((*key).to_owned(), v.clone()))
        })
        .collect()
}

/// Microseconds since the epoch of an RFC 3339 time (`2026-11-24T10:00:00Z`,
/// `2026-11-24T10:00:00.123+01:00`).
pub fn parse_micros(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once(['T', 't', ' '])?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset_min) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, mm) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        (
            c,
            sign * (h.parse::<i64>().ok()? * 60 + mm.parse::<i64>().ok()?),
        )
    } else {
        (time, 0)
    };
    let mut t = clock.split(':');
    let h = t.next()?.parse::<i64>().ok()?;
    let min = t.next()?.parse::<i64>().ok()?;
    let (sec, frac) = match t.next() {
        Some(x) => match x.split_once('.') {
            Some((s, f)) => (s.parse::<i64>().ok()?, f),
            None => (x.parse::<i64>().ok()?, ""),
        },
        None => (0, ""),
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let micros_frac: i64 = format!("{:0<6}", &frac[..frac.len().min(6)]).parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = ((days * 24 + h) * 60 + min - offset_min) * 60 + sec;
    Some(secs * 1_000_000 + micros_frac)
}

/// An RFC 3339 UTC time, to the second, of milliseconds since the epoch.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // The civil date of a day number (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_of_every_status_are_accepted() {
        for (e, d) in STATUSES {
            assert_eq!(standard_status(e), Some(e));
            assert_eq!(standard_status(d), Some(e));
        }
        assert_eq!(
            standard_status("active under contract"),
            Some("ActiveUnderContract")
        );
        assert_eq!(standard_status("Sold"), None);
    }

    #[test]
    fn times_parse_with_fractions_and_offsets() {
        assert_eq!(parse_micros("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_micros("1970-01-01T00:00:01.25Z"), Some(1_250_000));
        assert_eq!(parse_micros("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_micros("1970-01-01T00:00:00-00:30"),
            Some(1_800_000_000)
        );
        assert_eq!(parse_micros("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_micros("yesterday"), None);
        for t in [
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2026-11-24T10:05:00Z",
        ] {
            let ms = parse_micros(t).unwrap() / 1000;
            assert_eq!(format_ms(ms), t);
        }
    }

    #[test]
    fn feed_values_are_normalised_and_bad_ones_dropped() {
        let raw = json!({"ListingKey": 1234, "StandardStatus": "Active Under Contract", "ListPrice": 350000.5,
                         "BedroomsTotal": 3.0, "PropertyType": "Residential Income", "YearBuilt": "nineteen",
                         "Latitude": 53.7997, "SomethingElse": 1, "PublicRemarks": null});
        let (f, dropped) = from_reso(&raw);
        assert_eq!(f["ListingKey"], "1234");
        assert_eq!(f["StandardStatus"], "ActiveUnderContract");
        assert_eq!(f["ListPrice"], "350000.5");
        assert_eq!(f["BedroomsTotal"], 3);
        assert_eq!(f["PropertyType"], "ResidentialIncome");
        assert_eq!(f["Latitude"], "53.7997");
        assert_eq!(f["PublicRemarks"], Value::Null);
        assert!(!f.contains_key("YearBuilt") && !f.contains_key("SomethingElse"));
        assert_eq!(dropped.len(), 1, "{dropped:?}");
    }

    #[test]
    fn changes_compare_as_the_crm_stores() {
        let stored = json!({"custom": {"ListPrice": "350000", "ModificationTimestamp": "2026-01-01T10:00:00Z",
                                        "City": "Leeds"}});
        let same_again: Map<String, Value> = json!({"ListPrice": "350000.00",
            "ModificationTimestamp": "2026-01-01T10:00:00.000Z", "City": "Leeds"})
        .as_object()
        .cloned()
        .unwrap();
        assert!(changes(&stored, &same_again).is_empty());
        let cut: Map<String, Value> =
            json!({"ListPrice": "340000", "BedroomsTotal": 3, "City": "Leeds"})
                .as_object()
                .cloned()
                .unwrap();
        let c = changes(&stored, &cut);
        assert_eq!(c.len(), 2);
        assert_eq!(c["ListPrice"], "340000");
    }
}
