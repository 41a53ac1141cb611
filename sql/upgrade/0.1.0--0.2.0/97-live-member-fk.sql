-- Upgrade part 97 (issue 15): segment.live_member loses its foreign key to
-- segment.subject (every new overlay row checked it and locked the subject's
-- row FOR KEY SHARE); part 89 deletes a dropped subject's overlay rows.
ALTER TABLE segment.live_member DROP CONSTRAINT live_member_subject_id_fkey;
