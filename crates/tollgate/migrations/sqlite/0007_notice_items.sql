-- PostgreSQL's 0007 adds the function through which the notices job hands it a chunk of
-- subscriptions per call. SQLite has no stored functions and needs none: there the job sends
-- each subscription's statements, with their BEGIN and COMMIT, to the connection in one call.
-- This version keeps both backends' migration lists the same.
SELECT 1;
