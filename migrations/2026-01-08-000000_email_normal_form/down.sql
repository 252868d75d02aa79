-- The data step cannot be undone: addresses it rewrote keep their normal form. (An earlier version
-- matches an internationalised domain only as typed, so such users cannot sign in on it.)
DROP TABLE IF EXISTS aegis_data_steps;
