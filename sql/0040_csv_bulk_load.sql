-- What the Open Access CSV import needs to load 490,000 rows at COPY speed (bench/csv_import.py).
--
-- 1. met_objects.csv_raw keeps the CSV record as it stands in the file (text, its quoting and
--    whitespace intact) instead of a JSON object of its fields. Parsing that JSON (jsonb) cost
--    PostgreSQL more than all the typed columns together, and building it cost Python as much as
--    reading the CSV. The record is the more faithful copy too: nothing is reformatted, and
--    Python's csv module (or any CSV reader) gives back its fields. Rows stored before this
--    migration keep their JSON as text; the import's hash version changed with it, so the next
--    import rewrites them.
ALTER TABLE met_objects ALTER COLUMN csv_raw TYPE text USING csv_raw::text;
COMMENT ON COLUMN met_objects.csv_raw IS
    'The Open Access CSV record of the object as it stands in the file (the first line of a multi-line record to the last), without its line break';

-- 2. The constituents' and tags' references to met_objects are checked once per statement
--    instead of once per row. A foreign key runs one query and takes one row lock on
--    met_objects for every row inserted: for the CSV's ~1.1 million constituents and tags that
--    was a third of the import's database time. The triggers below keep what the foreign keys
--    gave: a row naming an object that does not exist is refused (checked against all the rows
--    the statement wrote, in one join), deleting an object deletes its lists, truncating
--    met_objects empties them, and an object's id cannot change under its lists. What they do
--    not give is the foreign key's row lock: a transaction deleting an object at the same time
--    as another adds a tag to it can leave that tag behind. metgan never deletes objects (an
--    object the Met withdrew is marked status 'gone'), so nothing here does that.
ALTER TABLE met_constituents DROP CONSTRAINT met_constituents_object_id_fkey;
ALTER TABLE met_tags DROP CONSTRAINT met_tags_object_id_fkey;

CREATE FUNCTION metgan_lists_check_objects() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    missing integer;
BEGIN
    SELECT w.object_id INTO missing
    FROM written AS w
    WHERE NOT EXISTS (SELECT 1 FROM met_objects AS o WHERE o.object_id = w.object_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "%" refers to object_id % absent from met_objects',
            TG_TABLE_NAME, missing
            USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER met_constituents_check_objects_insert AFTER INSERT ON met_constituents
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION metgan_lists_check_objects();
CREATE TRIGGER met_constituents_check_objects_update AFTER UPDATE ON met_constituents
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION metgan_lists_check_objects();
CREATE TRIGGER met_tags_check_objects_insert AFTER INSERT ON met_tags
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION metgan_lists_check_objects();
CREATE TRIGGER met_tags_check_objects_update AFTER UPDATE ON met_tags
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION metgan_lists_check_objects();

CREATE FUNCTION metgan_objects_delete_lists() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM met_constituents AS c USING deleted AS d WHERE c.object_id = d.object_id;
    DELETE FROM met_tags AS t USING deleted AS d WHERE t.object_id = d.object_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER met_objects_delete_lists AFTER DELETE ON met_objects
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION metgan_objects_delete_lists();

CREATE FUNCTION metgan_objects_truncate_lists() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- DELETE, not TRUNCATE: a TRUNCATE naming the lists as well holds them while this runs
    DELETE FROM met_constituents;
    DELETE FROM met_tags;
    RETURN NULL;
END
$$;
CREATE TRIGGER met_objects_truncate_lists AFTER TRUNCATE ON met_objects
    FOR EACH STATEMENT EXECUTE FUNCTION metgan_objects_truncate_lists();

CREATE FUNCTION metgan_objects_keep_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.object_id IS DISTINCT FROM OLD.object_id THEN
        RAISE EXCEPTION 'object_id of met_objects cannot change (% to %)', OLD.object_id, NEW.object_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER met_objects_keep_id BEFORE UPDATE OF object_id ON met_objects
    FOR EACH ROW EXECUTE FUNCTION metgan_objects_keep_id();
