// Package anonymize is the only code that turns hits into audience data.
//
// [Anonymizer.Audience] reads one [Request] and fills an [Audience]: the
// site, the hour, the path without its query string, the country (and, only
// when configured, the region and city) looked up before truncation, the
// browser family, OS family and device class, the referrer reduced to its
// registrable domain, the status class, the client's [Network] truncated to
// /16 (IPv4) or /48 (IPv6) or coarser, and a daily visitor hash. Bots,
// crawlers, monitoring probes, health checks and (when the opt-out setting is
// on) requests carrying Sec-GPC: 1 or DNT: 1 are left out and counted.
//
// Guarantees:
//
//   - No unmasked address leaves this package. An [Audience] carries the
//     client only as a [Network], which holds an already truncated prefix and
//     which only this package can construct; no method returns the full
//     address. The visitor hash is a keyed SipHash-2-4 of site, full address
//     and user agent: without the day's key it cannot be linked back to an
//     address, not even by trying every IPv4 address.
//   - Visitor keys are random (crypto/rand), one per UTC day, held in memory
//     by [Keys] and shared between instances only through a [KeyStore] that
//     is never the statistics database. A single instance (connlog serve in
//     embedded mode) uses a [MemoryKeyStore]: the key never leaves memory.
//     The instances of one consumer group on a ClickHouse server must hash a
//     visitor alike, so they share it in ops.visitor_keys, readable only by
//     connlog's ingest user (and the ClickHouse administrator). A key serves its own day and the
//     next one (for late log lines) and is forgotten, in memory and in the
//     KeyStore, 48 hours after its day began. Keys never print: [Key.String]
//     returns "<redacted>".
//   - Identifiers are per site: the site is part of the hashed input, so one
//     person visiting two sites gets two unrelated visitor hashes.
//   - Low-cardinality, content-free dimensions: browser and OS are mapped to
//     a fixed list of families ("Other" otherwise), so no free text from a
//     user agent reaches the statistics; a referrer that is an IP literal
//     becomes "(ip)".
//   - The hot path does not allocate once its caches are warm (user agents,
//     geolocation records and keys are cached, with bounded memory).
//
// Storage: this package imports no other connlog package. ingest fills a
// [Request] from each store.Hit (ingest.WithAudience), and the store keeps
// the [Audience] rows of a batch (store.Batch.Audience) only as aggregates:
// it groups them per site, hour, dimension and key (hits and the distinct
// Visitor hashes of each cell) and inserts the cells into a Null table whose
// materialized view turns the hashes into uniqCombined64 sketches, per hour
// and, merged, per day. The Network is not stored at all. The KeyStore of a
// deployment is store.VisitorKeys (the operations database, 2-day TTL).
//
// Nothing in this package logs an address, a user agent or a key.
package anonymize
