-- Downloaded, valid images of a training subset's objects: the selection rule's objects
-- (subset_candidates.sql, which metgan/images/selection.py puts in front of this query as the
-- CTE "candidates"; the rule is never repeated here) joined to met_images rows with status
-- 'ok' and a file on disk. Ordered so that when one image (same sha256) belongs to several
-- objects, the lowest object id and image number come first; the caller keeps the first of
-- each sha256.
--
-- Parameters: those of subset_candidates.sql, plus
--   primary_only  boolean  only each object's primary image (seq 0)
SELECT i.object_id, i.seq, i.path, i.sha256, i.width, i.height
FROM candidates AS c
JOIN met_images AS i ON i.object_id = c.object_id
WHERE i.status = 'ok'
  AND i.path IS NOT NULL
  AND i.sha256 IS NOT NULL
  AND (NOT %(primary_only)s OR i.seq = 0)
ORDER BY i.object_id, i.seq
