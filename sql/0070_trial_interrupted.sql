-- A trial whose trainer ended without finishing it (SIGTERM, a kill, a lost machine) is
-- 'interrupted': it resumes from its newest checkpoint when trained again.
ALTER TABLE trials DROP CONSTRAINT trials_status_check;
ALTER TABLE trials ADD CONSTRAINT trials_status_check
    CHECK (status IN ('pending', 'running', 'paused', 'interrupted', 'completed', 'stopped', 'failed', 'pruned'));
