//! The edition's demo data (`[demo] jobs` in `verticals/real-estate.toml`):
//! listings, search criteria on some of the demo contacts, showings for the
//! coming days and an open house today, and the buyer matching that
//! follows, all through the same host calls as real work. Runs once per
//! tenant.

use serde_json::{Value, json};
use trellis_plugin_sdk::records::Query;
use trellis_plugin_sdk::{host, kv, log, records};

use crate::listing::format_ms;

pub const JOB: &str = "demo";
const DONE_KEY: &str = "demo:done";

const CITIES: [(&str, &str, &str); 5] = [
    ("Austin", "TX", "787"),
    ("Denver", "CO", "802"),
    ("Portland", "OR", "972"),
    ("Raleigh", "NC", "276"),
    ("Madison", "WI", "537"),
];
const STREETS: [&str; 6] = ["Oak", "Maple", "Cedar", "Pine", "Elm", "Birch"];
const SUBTYPES: [&str; 3] = ["SingleFamilyResidence", "Condominium", "Townhouse"];
const HOUR_MS: i64 = 3_600_000;

fn count(payload: &Value, key: &str, default: u64, max: u64) -> usize {
    payload
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or(default)
        .min(max) as usize
}

pub fn run(payload: &Value) -> Result<(), String> {
    if kv::get(DONE_KEY).map_err(|e| e.to_string())?.is_some() {
        return Ok(());
    }
    let now = host::now_ms();
    let n = count(payload, "listings", 120, 1000);
    let mut on_market = Vec::new();
    for i in 0..n {
        let h = (i as u64).wrapping_mul(2_654_435_761) % 1_000_003;
        let (city, state, zip) = CITIES[i % CITIES.len()];
        let price = 180_000 + (h % 120) * 5_000;
        let beds = 1 + h % 5;
        let status = match h % 10 {
            0 => "Pending",
            1 => "ComingSoon",
            2 => "Closed",
            _ => "Active",
        };
        let listing = records::create(
            "listing",
            &json!({"custom": {
                "ListingKey": format!("DEMO-{i:04}"),
                "ListingId": format!("D{i:06}"),
                "StandardStatus": status,
                "ListPrice": price.to_string(),
                "OriginalListPrice": (price + (h % 3) * 5_000).to_string(),
                "UnparsedAddress": format!("{} {} Street, {city}, {state}", 100 + h % 900, STREETS[i % STREETS.len()]),
                "City": city,
                "StateOrProvince": state,
                "PostalCode": format!("{zip}{:02}", h % 100),
                "Country": "US",
                "PropertyType": "Residential",
                "PropertySubType": SUBTYPES[i % SUBTYPES.len()],
                "BedroomsTotal": beds,
                "BathroomsTotalInteger": 1 + h % 3,
                "LivingArea": (900 + h % 2500).to_string(),
                "YearBuilt": 1960 + (h % 64) as i64,
                "PublicRemarks": format!("A bright {beds}-bedroom home in {city}, close to schools and parks."),
                "ModificationTimestamp": format_ms(now),
                "DaysOnMarket": h % 90,
                "GarageYN": !h.is_multiple_of(3),
                "FireplaceYN": h.is_multiple_of(4),
                "CoolingYN": h.is_multiple_of(2),
            }}),
        )
        .map_err(|e| e.to_string())?;
        if ["Active", "ComingSoon"].contains(&status) {
            on_market.push(listing);
        }
    }

    // Some of the demo contacts are buyers with criteria.
    let buyers = Query::new("contact")
        .sort("created_at")
        .limit(count(payload, "buyers", 40, 200) as u32)
        .fetch()
        .map_err(|e| e.to_string())?
        .data;
    for (i, b) in buyers.iter().enumerate() {
        let (city, _, _) = CITIES[i % CITIES.len()];
        let id = b["id"].as_str().unwrap_or_default();
        let version = b["version"].as_i64().unwrap_or(0);
        records::update(
            "contact",
            id,
            &json!({"custom": {"buyer_max_price": (250_000 + (i as u64 % 8) * 50_000).to_string(),
                               "buyer_min_beds": 1 + i % 3, "buyer_cities": city,
                               "pre_approved": i % 3 != 2,
                               "buyer_must_haves": if i.is_multiple_of(4) { json!(["Garage"]) } else { json!([]) }}}),
            version,
        )
        .map_err(|e| e.to_string())?;
        crate::RealEstate::rescore(id)?;
    }

    // Showings over the next days, and an open house going on now.
    let mut showings = 0;
    for (i, (listing, buyer)) in on_market.iter().zip(&buyers).take(8).enumerate() {
        let starts = (now / HOUR_MS + 24 + 2 * i as i64) * HOUR_MS;
        records::create(
            "showing",
            &json!({"owner_id": buyer.get("owner_id"), "custom": {
                "listing_id": listing["id"], "kind": "showing", "buyer_id": buyer["id"],
                "status": "confirmed", "starts_at": format_ms(starts),
                "ends_at": format_ms(starts + HOUR_MS / 2)}}),
        )
        .map_err(|e| e.to_string())?;
        showings += 1;
    }
    if let Some(listing) = on_market.last() {
        let starts = now - HOUR_MS / 2;
        records::create(
            "showing",
            &json!({"owner_id": buyers.first().and_then(|b| b.get("owner_id")), "custom": {
                "listing_id": listing["id"], "kind": "open_house", "status": "confirmed",
                "starts_at": format_ms(starts), "ends_at": format_ms(starts + 3 * HOUR_MS)}}),
        )
        .map_err(|e| e.to_string())?;
    }
    kv::set(DONE_KEY, b"1").map_err(|e| e.to_string())?;
    // Their agents hear of the matching listings.
    let ids: Vec<&Value> = on_market.iter().map(|l| &l["id"]).collect();
    if !ids.is_empty() {
        host::enqueue_job(crate::MATCH_JOB, &json!({"listings": ids}), 0)
            .map_err(|e| e.to_string())?;
    }
    log::info(&format!(
        "demo data: {n} listings, {} buyers, {showings} showings and an open house",
        buyers.len()
    ));
    Ok(())
}
