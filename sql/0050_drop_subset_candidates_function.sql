-- The subset selection rule moved out of the schema into the named query
-- metgan/sql/queries/subset_candidates.sql: inside a checksum-locked migration (0020) the rule
-- could only change by adding a migration. 0020 stays as applied (the runner refuses changed
-- checksums); this drops what it created, and nothing calls the function any more.
DROP FUNCTION IF EXISTS subset_candidates(text[], text[], text[], boolean);
