-- metgan's whole schema: the Met collection (objects, constituents, tags, images), scrape runs,
-- CSV imports, training subsets, and grid searches with their trials and per-epoch metrics.

-- One row per Met object, whichever way it arrived (API record or Open Access CSV row).
-- Typed columns mirror the API's fields; `raw` keeps the API record as received and `csv_raw`
-- the CSV row, so nothing the Met sent is lost.
CREATE TABLE met_objects (
    object_id               integer PRIMARY KEY,
    status                  text NOT NULL DEFAULT 'ok'
                            CHECK (status IN ('ok', 'pending', 'gone', 'error')),
    status_reason           text,
    source                  text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'csv')),
    is_highlight            boolean,
    is_public_domain        boolean,
    is_timeline_work        boolean,
    accession_number        text,
    accession_year          text,
    primary_image           text,
    primary_image_small     text,
    additional_images       text[] NOT NULL DEFAULT '{}',
    department              text,
    object_name             text,
    title                   text,
    culture                 text,
    period                  text,
    dynasty                 text,
    reign                   text,
    portfolio               text,
    object_date             text,
    object_begin_date       integer,
    object_end_date         integer,
    medium                  text,
    dimensions              text,
    measurements            jsonb,
    credit_line             text,
    geography_type          text,
    city                    text,
    state                   text,
    county                  text,
    country                 text,
    region                  text,
    subregion               text,
    locale                  text,
    locus                   text,
    excavation              text,
    river                   text,
    classification          text,
    rights_and_reproduction text,
    link_resource           text,
    metadata_date           timestamptz,
    repository              text,
    object_url              text,
    object_wikidata_url     text,
    gallery_number          text,
    raw                     jsonb,
    csv_raw                 jsonb,
    csv_hash                text,
    attempts                integer NOT NULL DEFAULT 0,
    fetched_at              timestamptz,
    csv_imported_at         timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX met_objects_status_idx ON met_objects (status);
CREATE INDEX met_objects_object_name_lower_idx ON met_objects (lower(object_name));
CREATE INDEX met_objects_classification_lower_idx ON met_objects (lower(classification));
CREATE INDEX met_objects_department_idx ON met_objects (department);

-- People and workshops credited on an object, in the order the Met lists them.
CREATE TABLE met_constituents (
    object_id       integer NOT NULL REFERENCES met_objects (object_id) ON DELETE CASCADE,
    seq             integer NOT NULL,
    constituent_id  integer,
    role            text,
    name            text,
    prefix          text,
    suffix          text,
    display_bio     text,
    alpha_sort      text,
    nationality     text,
    begin_date      text,
    end_date        text,
    gender          text,
    ulan_url        text,
    wikidata_url    text,
    PRIMARY KEY (object_id, seq)
);
CREATE INDEX met_constituents_constituent_idx ON met_constituents (constituent_id);

-- Subject keywords, in the Met's order.
CREATE TABLE met_tags (
    object_id     integer NOT NULL REFERENCES met_objects (object_id) ON DELETE CASCADE,
    seq           integer NOT NULL,
    term          text NOT NULL,
    aat_url       text,
    wikidata_url  text,
    PRIMARY KEY (object_id, seq)
);
CREATE INDEX met_tags_term_lower_idx ON met_tags (lower(term));

-- Images of an object: seq 0 is the primary image, 1.. the additional images.
CREATE TABLE met_images (
    object_id      integer NOT NULL REFERENCES met_objects (object_id) ON DELETE CASCADE,
    seq            integer NOT NULL,
    url            text NOT NULL,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'ok', 'failed', 'rejected', 'gone')),
    path           text,            -- relative to <data_dir>/images
    width          integer,
    height         integer,
    bytes          bigint,
    sha256         text,
    content_type   text,
    error          text,
    attempts       integer NOT NULL DEFAULT 0,
    downloaded_at  timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (object_id, seq)
);
CREATE INDEX met_images_status_idx ON met_images (status);
CREATE INDEX met_images_sha256_idx ON met_images (sha256);

-- One row per ingest run; the watermark of an incremental run is the start date of the last
-- successful one (the Met's `metadataDate` filter takes a date).
CREATE TABLE scrape_runs (
    run_id          bigserial PRIMARY KEY,
    mode            text NOT NULL CHECK (mode IN ('full', 'incremental', 'search', 'department', 'targeted', 'ids')),
    params          jsonb NOT NULL DEFAULT '{}',
    metadata_date   date,           -- the watermark this run asked the Met with (incremental)
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failed')),
    discovered      integer,
    counts          jsonb NOT NULL DEFAULT '{}',
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX scrape_runs_success_idx ON scrape_runs (mode, started_at DESC) WHERE status = 'success';

-- Open Access CSV imports and the rows they could not use.
CREATE TABLE csv_imports (
    import_id    bigserial PRIMARY KEY,
    source       text NOT NULL,
    sha256       text,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failed')),
    counts       jsonb NOT NULL DEFAULT '{}',
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

CREATE TABLE csv_import_errors (
    import_id    bigint NOT NULL REFERENCES csv_imports (import_id) ON DELETE CASCADE,
    line_number  integer NOT NULL,
    reason       text NOT NULL,
    raw_line     text,
    PRIMARY KEY (import_id, line_number)
);

-- A named training subset (e.g. "vases") and the images in it.
CREATE TABLE subsets (
    name        text PRIMARY KEY,
    params      jsonb NOT NULL,
    counts      jsonb NOT NULL DEFAULT '{}',
    path        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per distinct source image (by sha256) considered for a subset: built, or skipped
-- with the reason.
CREATE TABLE subset_images (
    subset_name   text NOT NULL REFERENCES subsets (name) ON DELETE CASCADE,
    sha256        text NOT NULL,
    object_id     integer NOT NULL,
    image_seq     integer NOT NULL,
    status        text NOT NULL CHECK (status IN ('ok', 'skipped')),
    reason        text,
    path          text,             -- relative to the subset folder
    params_hash   text NOT NULL,    -- the build parameters this output was made with
    source_width  integer,
    source_height integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subset_name, sha256),
    FOREIGN KEY (object_id, image_seq) REFERENCES met_images (object_id, seq) ON DELETE CASCADE
);
CREATE INDEX subset_images_status_idx ON subset_images (subset_name, status);

-- A grid search over GAN settings, its trials (id = hash of the resolved config) and their
-- per-epoch metrics.
CREATE TABLE searches (
    name        text PRIMARY KEY,
    subset_name text,
    grid        jsonb NOT NULL,
    objective   text NOT NULL,
    direction   text NOT NULL CHECK (direction IN ('min', 'max')),
    path        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trials (
    search_name   text NOT NULL REFERENCES searches (name) ON DELETE CASCADE,
    trial_id      text NOT NULL,
    config        jsonb NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'stopped', 'failed')),
    stop_reason   text,
    error         text,
    epochs_done   integer NOT NULL DEFAULT 0,
    device        text,
    hostname      text,
    images_per_s  double precision,
    final_metrics jsonb NOT NULL DEFAULT '{}',
    best_metrics  jsonb NOT NULL DEFAULT '{}',
    objective     double precision,
    path          text NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (search_name, trial_id)
);
CREATE INDEX trials_status_idx ON trials (search_name, status);

CREATE TABLE trial_epochs (
    search_name  text NOT NULL,
    trial_id     text NOT NULL,
    epoch        integer NOT NULL,
    metrics      jsonb NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (search_name, trial_id, epoch),
    FOREIGN KEY (search_name, trial_id) REFERENCES trials (search_name, trial_id) ON DELETE CASCADE
);
