-- The licence a model's weights come under, as its catalog entry states it (SPDX where
-- there is one, e.g. "MIT OR Apache-2.0"); NULL where the entry says nothing. Shown in
-- the report beside the model, so a shared warehouse carries it to colleagues.
ALTER TABLE models ADD COLUMN license VARCHAR;
