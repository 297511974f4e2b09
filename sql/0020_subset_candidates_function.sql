-- The subset selection rule in one place: both named queries (sql/queries/subset_candidates.sql
-- for the CSV bootstrap's targeted scrape, sql/queries/subset_images.sql for building a subset)
-- select from this function, so the objects scraped for a subset and the ones it is built from
-- can never drift apart. A single-SELECT SQL function: PostgreSQL inlines it into the caller.
--
-- The object name matches one of the include patterns (regular expressions, case-insensitive),
-- or the classification is one of the chosen ones (lower case), and the name matches none of
-- the exclude patterns; public domain only unless asked otherwise. Objects known only from the
-- Open Access CSV ('pending') count.
CREATE FUNCTION subset_candidates(include text[], exclude text[], classifications text[],
                                  public_domain boolean)
RETURNS TABLE (object_id integer)
LANGUAGE sql STABLE
AS $$
    SELECT o.object_id
    FROM met_objects AS o
    WHERE o.status IN ('ok', 'pending')
      AND (NOT public_domain OR o.is_public_domain IS TRUE)
      AND (
            coalesce(o.object_name, '') ~* ANY (include)
         OR lower(coalesce(o.classification, '')) = ANY (classifications)
      )
      AND NOT coalesce(o.object_name, '') ~* ANY (exclude)
$$;
