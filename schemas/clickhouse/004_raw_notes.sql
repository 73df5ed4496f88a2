-- Why optional values of a result were nulled while normalising (a reply size or MTU that
-- does not fit its column, an MPLS label that is not a UInt32, a DNS TTL out of range):
-- one "field: reason" per value. The payload keeps the original values verbatim.
ALTER TABLE raw_results ADD COLUMN IF NOT EXISTS notes Array(String) AFTER payload;
