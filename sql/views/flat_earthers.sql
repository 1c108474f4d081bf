-- Flat-earthers at the default margin of 0.1 (see flat_earthers_at for the rule).
CREATE OR REPLACE VIEW flat_earthers AS
SELECT * FROM flat_earthers_at(0.1);
