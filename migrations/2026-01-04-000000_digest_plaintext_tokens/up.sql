-- Decision 21 and 25: every token is stored as the SHA-256 hex digest of its plaintext. The reference
-- service keeps verification, password-reset and email-change tokens in plaintext (43-character
-- URL-safe strings); digest those in place so that links already sent keep working. A value that is
-- already a 64-character lowercase hex digest is left alone.
UPDATE email_verification_tokens
SET token = encode(sha256(convert_to(token, 'UTF8')), 'hex')
WHERE token !~ '^[0-9a-f]{64}$';

UPDATE password_reset_tokens
SET token = encode(sha256(convert_to(token, 'UTF8')), 'hex')
WHERE token !~ '^[0-9a-f]{64}$';

UPDATE email_change_requests
SET token = encode(sha256(convert_to(token, 'UTF8')), 'hex')
WHERE token !~ '^[0-9a-f]{64}$';
