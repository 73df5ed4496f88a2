-- Physics across replies (issue 16): where the bloc of a hop comes from (a geo source, or
-- physics alone: the countries the intersection of its RTT discs can touch), the
-- end-to-end refutations on a path, and vantage points known only by their country.
ALTER TABLE hop_verdicts ADD COLUMN IF NOT EXISTS physical_bloc LowCardinality(String) DEFAULT '';
ALTER TABLE hop_verdicts ADD COLUMN IF NOT EXISTS physical_basis LowCardinality(String) DEFAULT '';
ALTER TABLE hop_verdicts ADD COLUMN IF NOT EXISTS candidate_countries Array(String) DEFAULT [];
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS destination_bloc LowCardinality(String) DEFAULT '';
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS destination_basis LowCardinality(String) DEFAULT '';
ALTER TABLE path_verdicts ADD COLUMN IF NOT EXISTS end_to_end_refutations UInt32 DEFAULT 0;
ALTER TABLE vantage_points ADD COLUMN IF NOT EXISTS area LowCardinality(String) DEFAULT '';
