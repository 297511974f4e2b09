-- Objects of a training subset, from metadata alone (no image needed); the rule itself is the
-- function subset_candidates (sql/0020_subset_candidates_function.sql): the object name matches
-- one of the include patterns, or the classification is one of the chosen ones (e.g. the Greek
-- and Roman department's "Vases"), and the name matches none of the exclude patterns
-- (fragments). Public domain only, unless asked otherwise. Objects known only from the Open
-- Access CSV ('pending') count, so the CSV bootstrap can ask the API about exactly these.
--
-- Parameters (bound by psycopg2, never spliced; never name their placeholders in a comment:
-- a value holding a newline would end the comment):
--   include          text[]  PostgreSQL regular expressions, matched case-insensitively (~*)
--   exclude          text[]  same, for names to leave out
--   classifications  text[]  lower-case classifications taken whatever the name
--   public_domain    boolean require is_public_domain
SELECT c.object_id
FROM subset_candidates(%(include)s::text[], %(exclude)s::text[], %(classifications)s::text[],
                       %(public_domain)s) AS c
ORDER BY c.object_id
