-- The table of the worker-file-rows sink (deploy/connect/worker-file-rows-sink.properties),
-- made by hand before the connector starts: the same columns as Debezium's JDBC sink makes
-- from the row schema (schema.evolution=basic), but with file_json as jsonb and indexes for
-- the columns a BI tool groups by. Without it the connector makes the table itself
-- (file_json as text: cast it, file_json::jsonb).
CREATE TABLE IF NOT EXISTS worker_file_rows (
    ssn                       text PRIMARY KEY,
    version                   bigint NOT NULL,
    birth_date                date NOT NULL,
    sex                       text NOT NULL,
    region                    text,
    province                  text,
    highest_skill_level       text,
    current_employer          text,
    current_employers         bigint NOT NULL,
    employments               bigint NOT NULL,
    training_hours            bigint NOT NULL,
    trainings_completed       bigint NOT NULL,
    certificates              bigint NOT NULL,
    insurance_active_schemes  bigint NOT NULL,
    pension_months            bigint NOT NULL,
    subsidy_grants            bigint NOT NULL,
    subsidy_paid_cny          bigint NOT NULL,
    open_notices              bigint NOT NULL,
    issues                    bigint NOT NULL,
    applied_events            bigint NOT NULL,
    file_json                 jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS worker_file_rows_province ON worker_file_rows (province);
CREATE INDEX IF NOT EXISTS worker_file_rows_region ON worker_file_rows (region);
CREATE INDEX IF NOT EXISTS worker_file_rows_level ON worker_file_rows (highest_skill_level);
CREATE INDEX IF NOT EXISTS worker_file_rows_employer ON worker_file_rows (current_employer);
