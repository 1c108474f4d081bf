-- How many clips the catalog's reported accuracy was measured on (catalog key
-- `accuracy_n`), so that the report shows it beside that accuracy, as it shows the
-- warehouse's own accuracy with its n. NULL where the catalog does not say.
ALTER TABLE models ADD COLUMN reported_accuracy_n INTEGER;
