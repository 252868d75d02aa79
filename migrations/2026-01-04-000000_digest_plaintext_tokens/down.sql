-- Digests cannot be turned back into tokens: nothing to revert.
SELECT 1;
