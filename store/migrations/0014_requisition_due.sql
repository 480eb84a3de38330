-- 0014: the date the authority expects the answer by. It is optional when
-- the requisition is entered, so it is NULL when unknown, as it is for every
-- requisition recorded before this migration.
ALTER TABLE ${ops}.requisitions
    ADD COLUMN IF NOT EXISTS due_on Nullable(Date);
