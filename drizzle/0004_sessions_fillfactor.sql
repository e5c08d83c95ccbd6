-- Every refresh rewrites its session row: room left on each page keeps the new version on the same page
-- (a HOT update, no index entries), so the table and its indexes do not grow with rotations.
ALTER TABLE "sessions" SET (fillfactor = 80);
