-- The kind of party a listed entry is (`Person`, `Company`, `Organization`, `Vessel`), when its
-- source says: the CSL `type` column, or a rule's entry whose name carries a legal form. NULL
-- is unknown, scored as before kinds were stored. A pair scores by the rules of its kinds, so
-- a person entry never alerts on a company supplier. Common SQL of SQLite and PostgreSQL.
ALTER TABLE listed_entries ADD COLUMN schema TEXT;

-- The kind a supplier record states (the optional `schema` column of the supplier file or
-- topic); NULL: the record says nothing, and the supplier is screened as an organisation.
ALTER TABLE suppliers ADD COLUMN schema TEXT;
