-- Random search and successive halving: a search records its strategy and its rungs' plan; a
-- trial can be paused at a rung's epochs or pruned by halving, and keeps its rung history.
ALTER TABLE searches
    ADD COLUMN strategy jsonb NOT NULL DEFAULT '{"strategy": "grid"}',
    ADD COLUMN rungs    jsonb NOT NULL DEFAULT '[]';

ALTER TABLE trials DROP CONSTRAINT trials_status_check;
ALTER TABLE trials ADD CONSTRAINT trials_status_check
    CHECK (status IN ('pending', 'running', 'paused', 'completed', 'stopped', 'failed', 'pruned'));
ALTER TABLE trials
    ADD COLUMN rung         integer,
    ADD COLUMN rungs        jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN images_seen  bigint;
