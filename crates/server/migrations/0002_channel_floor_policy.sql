-- Per-channel floor policy; NULL keeps the server-wide setting.
ALTER TABLE channels ADD COLUMN preemption BIGINT;
ALTER TABLE channels ADD COLUMN max_talk_secs BIGINT;
