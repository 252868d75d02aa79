-- Lowercasing domains cannot be undone, and password_hash stays nullable: nothing to revert.
SELECT 1;
