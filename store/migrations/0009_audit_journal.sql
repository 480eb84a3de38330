-- 0009: audit rows arrive in batches from each instance's audit journal
-- (store/auditjournal): a row is fsynced in the journal before the data it
-- records leaves, and the journal ships its rows here every 200 ms. A batch
-- shipped again after a crash carries the same insert_deduplication_token;
-- this window makes the audit table recognise it.

ALTER TABLE ${ops}.audit MODIFY SETTING non_replicated_deduplication_window = 10000;
