-- PostgreSQL's 0010 drops the function `notice_items` of its 0007, which the notices job no
-- longer calls. SQLite never had it (its 0007 is a no-op too). This version keeps both
-- backends' migration lists the same.
SELECT 1;
