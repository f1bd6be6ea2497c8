-- How this file's generated codes are made: the check value of the code key and the ID
-- below which links keep the plain Base62 codes they were handed out with (links made
-- before codes were keyed). One row, written once. Times are Unix milliseconds.
CREATE TABLE code_scheme (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key_check   TEXT    NOT NULL,
    plain_below INTEGER NOT NULL CHECK (plain_below >= 0),
    recorded_at INTEGER NOT NULL
);

-- An operator's takedown (`shortener links disable`): the link answers 410 until it is
-- enabled again.
ALTER TABLE links ADD COLUMN disabled_at INTEGER NULL;
