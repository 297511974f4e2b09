-- The subset selection rule, in this one file: objects of a training subset, from metadata
-- alone (no image needed). Both uses read it: the CSV bootstrap's targeted scrape asks the API
-- about exactly these ids (metgan/pipeline.py), and building a subset joins its images to them
-- (subset_images.sql runs on top of this query as the CTE "candidates", see
-- metgan/images/selection.py), so the objects scraped for a subset and the ones it is built
-- from can never drift apart. It is a named query, not a migration: changing the rule is an
-- edit here, not a new schema version.
--
-- The object name matches one of the include patterns, or the classification is one of the
-- chosen ones (e.g. the Greek and Roman department's "Vases"), and the name matches none of the
-- exclude patterns (fragments). Public domain only, unless asked otherwise. Objects known only
-- from the Open Access CSV ('pending') count.
--
-- Parameters (bound by psycopg2, never spliced; never name their placeholders in a comment:
-- a value holding a newline would end the comment):
--   include          text[]  PostgreSQL regular expressions, matched case-insensitively (~*)
--   exclude          text[]  same, for names to leave out
--   classifications  text[]  lower-case classifications taken whatever the name
--   public_domain    boolean require is_public_domain
SELECT o.object_id
FROM met_objects AS o
WHERE o.status IN ('ok', 'pending')
  AND (NOT %(public_domain)s OR o.is_public_domain IS TRUE)
  AND (
        coalesce(o.object_name, '') ~* ANY (%(include)s::text[])
     OR lower(coalesce(o.classification, '')) = ANY (%(classifications)s::text[])
  )
  AND NOT coalesce(o.object_name, '') ~* ANY (%(exclude)s::text[])
ORDER BY o.object_id
