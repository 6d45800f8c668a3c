"""Numbered, append-only schema migrations. Never edit one that has shipped: append."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = []
migration = MIGRATIONS.append


@migration
def m001_initial(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE models (
            model_id VARCHAR PRIMARY KEY,      -- 'm-' + fingerprint prefix
            spec VARCHAR NOT NULL,             -- the spec as the user wrote it (first seen)
            kind VARCHAR NOT NULL,             -- hf | gguf | alias
            fingerprint VARCHAR NOT NULL,      -- hash of weights/adapter + load options
            base_model_id VARCHAR,             -- set for adapters: lineage
            adapter_path VARCHAR,
            load_options JSON,
            created_at TIMESTAMP DEFAULT current_timestamp
        );
        CREATE TABLE suites (
            suite_id VARCHAR PRIMARY KEY,      -- name + content hash prefix
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            content_hash VARCHAR NOT NULL,     -- hash of the suite file + its data
            path VARCHAR,
            config JSON,
            created_at TIMESTAMP DEFAULT current_timestamp
        );
        CREATE TABLE examples (
            suite_id VARCHAR NOT NULL,
            example_id VARCHAR NOT NULL,
            position INTEGER NOT NULL,         -- order in the data file
            input JSON,                        -- the raw record
            reference JSON,                    -- list of reference strings (may be empty)
            PRIMARY KEY (suite_id, example_id)
        );
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            model_id VARCHAR NOT NULL,
            suite_id VARCHAR NOT NULL,
            status VARCHAR NOT NULL,           -- running | completed | interrupted | failed
            config JSON,                       -- limit, batch size, generation params, metric specs
            seed INTEGER,
            versions JSON,
            git_sha VARCHAR,
            host VARCHAR,
            started_at TIMESTAMP,
            ended_at TIMESTAMP,
            n_examples INTEGER,                -- planned
            error VARCHAR                      -- why a run failed
        );
        CREATE TABLE generations (
            cache_key VARCHAR PRIMARY KEY,     -- hash(model fingerprint, prompt, params)
            model_id VARCHAR NOT NULL,
            request_type VARCHAR NOT NULL,     -- generate | rolling_loglikelihood
            prompt VARCHAR,
            params JSON,
            output VARCHAR,
            result JSON,                       -- non-text results (nll, token counts)
            prompt_tokens INTEGER,
            output_tokens INTEGER,
            latency_s DOUBLE,                  -- batch wall time / batch size
            error VARCHAR,                     -- set when generation failed; never a cache hit
            created_at TIMESTAMP DEFAULT current_timestamp
        );
        CREATE TABLE run_examples (
            run_id VARCHAR NOT NULL,
            example_id VARCHAR NOT NULL,
            cache_key VARCHAR,
            cached BOOLEAN,                    -- served from the generation cache
            error VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (run_id, example_id)
        );
        CREATE TABLE run_metrics (
            run_id VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,           -- the name scores use (alias or registry name)
            spec JSON,                         -- registry name + every bound argument
            aggregation VARCHAR NOT NULL,
            higher_is_better BOOLEAN NOT NULL,
            is_binary BOOLEAN NOT NULL,        -- 0/1 values (McNemar)
            PRIMARY KEY (run_id, metric)
        );
        CREATE TABLE scores (
            run_id VARCHAR NOT NULL,
            example_id VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE,                      -- NULL exactly when error is set
            weight DOUBLE,
            error VARCHAR,
            detail JSON,
            PRIMARY KEY (run_id, example_id, metric)
        );
        """
    )


@migration
def m002_training(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE training_runs (
            training_run_id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,             -- sft | dpo
            name VARCHAR,
            status VARCHAR NOT NULL,           -- running | completed | failed | interrupted
            parent_model_id VARCHAR NOT NULL,  -- what was trained: a base, or an SFT candidate for DPO
            candidate_model_id VARCHAR,        -- the registered adapter (set when training completes)
            adapter_path VARCHAR,
            config JSON,                       -- the validated training config, defaults filled in
            dataset_hash VARCHAR,              -- sha256 over the train (and validation) file contents
            dataset JSON,                      -- files, formats and record counts per split
            seed INTEGER,
            versions JSON,
            git_sha VARCHAR,
            host VARCHAR,
            started_at TIMESTAMP,
            ended_at TIMESTAMP,
            summary JSON,                      -- steps, last train loss, best eval loss, early stop
            error VARCHAR
        );
        CREATE TABLE training_logs (
            training_run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,              -- order of log events within the run
            step INTEGER NOT NULL,             -- optimizer step
            epoch DOUBLE,
            split VARCHAR NOT NULL,            -- train | eval | summary
            loss DOUBLE,                       -- train loss (split=train) or eval loss (split=eval)
            learning_rate DOUBLE,
            grad_norm DOUBLE,
            reward_margin DOUBLE,              -- DPO: mean chosen - rejected reward
            reward_accuracy DOUBLE,            -- DPO: share of pairs with chosen reward > rejected
            metrics JSON,                      -- every value the trainer logged
            logged_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (training_run_id, seq)
        );
        """
    )


@migration
def m003_judgments(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE judgments (
            cache_key VARCHAR PRIMARY KEY,     -- hash(judge model, rubric, prompt, candidate output(s))
            judge VARCHAR NOT NULL,            -- rubric | pairwise | local
            judge_model VARCHAR NOT NULL,      -- endpoint model@base_url, or a local model id (never a key)
            spec JSON,                         -- the judge spec (criteria, template, params)
            score DOUBLE,                      -- total points (rubric, local) or verdict (pairwise)
            scores JSON,                       -- per criterion, or the pairwise verdict
            rationale VARCHAR,
            raw VARCHAR,                       -- the judge's raw text (kept for errors too)
            error VARCHAR,                     -- set when the call failed or never parsed; never a cache hit
            mode VARCHAR,                      -- json_schema | json_object | text | next_token
            attempts INTEGER,                  -- calls made, retries included
            latency_s DOUBLE,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp
        );
        CREATE TABLE judge_agreements (
            agreement_id VARCHAR PRIMARY KEY,
            run_id VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            labels_path VARCHAR,
            labels_hash VARCHAR,               -- sha256 of the labels file
            n INTEGER NOT NULL,                -- examples with both a judge score and a label
            kappa_quadratic DOUBLE,            -- Cohen's kappa, quadratic weights, on rounded scores
            spearman DOUBLE,
            spearman_p DOUBLE,
            detail JSON,                       -- categories, unmatched ids, means
            created_at TIMESTAMP DEFAULT current_timestamp
        );
        """
    )


@migration
def m004_run_owner(db: duckdb.DuckDBPyConnection) -> None:
    # Which process owns a `running` row, and when it last stored something: a run whose
    # process is gone shows as dead instead of running forever. (host exists since m001/m002.)
    for table in ("runs", "training_runs"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN pid INTEGER")
        db.execute(f"ALTER TABLE {table} ADD COLUMN heartbeat_at TIMESTAMP")


@migration
def m005_verdict(db: duckdb.DuckDBPyConnection) -> None:
    # Issue #15: train↔eval contamination, judge health per judge run, human review labels.
    db.execute(
        """
        CREATE TABLE contamination_scans (
            scan_id VARCHAR PRIMARY KEY,
            train_files JSON NOT NULL,         -- paths as given
            train_hash VARCHAR NOT NULL,       -- sha256 over the files' bytes
            training_run_id VARCHAR,           -- set when the scan ran for a training run
            suites JSON NOT NULL,              -- per suite: suite_id, name, n_examples, counts by method
            params JSON,                       -- n-gram length, MinHash threshold and permutations
            n_records INTEGER,
            seconds DOUBLE,
            created_at TIMESTAMP DEFAULT current_timestamp
        );
        CREATE TABLE contamination (
            scan_id VARCHAR NOT NULL,
            suite_id VARCHAR NOT NULL,
            example_id VARCHAR NOT NULL,
            train_file VARCHAR NOT NULL,
            record INTEGER NOT NULL,           -- line of the training record
            method VARCHAR NOT NULL,           -- exact | ngram | minhash
            score DOUBLE NOT NULL,             -- 1 (exact), share of spans (ngram), Jaccard (minhash)
            field VARCHAR                      -- the suite field that matched (NULL for minhash)
        );
        CREATE TABLE judge_health (
            run_id VARCHAR PRIMARY KEY,        -- the judge suite's run
            judge VARCHAR,                     -- rubric | pairwise | local
            judge_model VARCHAR,
            n INTEGER,                         -- examples the judge was asked about
            parse_failures INTEGER,            -- judge calls that never gave a valid verdict
            parse_failure_rate DOUBLE,
            consistency DOUBLE,                -- pairwise: share of pairs judged the same in both orders
            score_sd DOUBLE,                   -- spread of the judge's scores
            distinct_scores INTEGER,
            kappa DOUBLE,                      -- quadratic-weighted kappa with human labels, when given
            kappa_n INTEGER,
            sanity JSON,                       -- reference vs wrong answers: means, separation, n
            detail JSON,
            updated_at TIMESTAMP DEFAULT current_timestamp
        );
        CREATE TABLE review_labels (
            review_id VARCHAR NOT NULL,        -- one exported review page
            run_id VARCHAR NOT NULL,           -- the run whose answer was labelled (un-shuffled)
            example_id VARCHAR NOT NULL,
            reviewer VARCHAR NOT NULL,
            criterion VARCHAR NOT NULL,
            score DOUBLE,
            note VARCHAR,
            shown_position INTEGER,            -- where the answer was shown (0 = first), for blind order
            labelled_at TIMESTAMP,
            imported_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (review_id, run_id, example_id, reviewer, criterion)
        );
        CREATE TABLE review_pages (
            review_id VARCHAR PRIMARY KEY,
            runs JSON NOT NULL,                -- the run ids reviewed
            criteria JSON NOT NULL,
            manifest JSON NOT NULL,            -- per example: which run each shown slot holds
            seed INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp
        );
        """
    )


@migration
def m006_measurement(db: duckdb.DuckDBPyConnection) -> None:
    # Issue #21: how each run measured (harness.measurement), so compare/gate/report refuse a pair
    # of runs measured differently. NULL for runs stored before: a partial record is rebuilt.
    db.execute("ALTER TABLE runs ADD COLUMN measurement JSON")


@migration
def m007_load(db: duckdb.DuckDBPyConnection) -> None:
    # Issue #26: load runs (`tunegate load`): a deployment's latency, throughput and errors under
    # load, per request and per level, for the gate's load rules and the report's latency section.
    db.execute(
        """
        CREATE TABLE load_runs (
            load_run_id VARCHAR PRIMARY KEY,   -- 'l-' + random hex
            model_id VARCHAR NOT NULL,         -- the endpoint (models row: spec, fingerprint)
            suites JSON NOT NULL,              -- [{suite_id, name, path}] whose prompts are replayed
            status VARCHAR NOT NULL,           -- running | completed | interrupted | failed
            config JSON,                       -- levels, duration/requests, warmup, seed, endpoint facts
            seed INTEGER,
            versions JSON,
            git_sha VARCHAR,
            host VARCHAR,                      -- the machine that sent the load
            pid INTEGER,
            heartbeat_at TIMESTAMP,
            started_at TIMESTAMP,
            ended_at TIMESTAMP,
            error VARCHAR
        );
        CREATE TABLE load_levels (
            load_run_id VARCHAR NOT NULL,
            level INTEGER NOT NULL,            -- position in the sweep (0 = first)
            mode VARCHAR NOT NULL,             -- concurrency (closed loop) | rate (open loop, per second)
            value DOUBLE NOT NULL,
            status VARCHAR NOT NULL,           -- running | completed (a resume redoes a running level)
            n_requests INTEGER,
            n_errors INTEGER,
            error_rate DOUBLE,
            duration_s DOUBLE,                 -- first request sent to last one finished
            requests_per_s DOUBLE,             -- successful requests per second of that window
            output_tokens_per_s DOUBLE,
            e2e_p50 DOUBLE, e2e_p90 DOUBLE, e2e_p95 DOUBLE, e2e_p99 DOUBLE,
            ttft_p50 DOUBLE, ttft_p90 DOUBLE, ttft_p95 DOUBLE, ttft_p99 DOUBLE,
            summary JSON,                      -- every number of harness.load.stats.LevelSummary
            started_at TIMESTAMP,
            ended_at TIMESTAMP,
            PRIMARY KEY (load_run_id, level)
        );
        CREATE TABLE load_requests (
            load_run_id VARCHAR NOT NULL,
            level INTEGER NOT NULL,
            seq INTEGER NOT NULL,              -- send order within the level
            suite_id VARCHAR,
            example_id VARCHAR,                -- the replayed prompt
            scheduled_s DOUBLE,                -- open loop: arrival time from the level's start
            sent_s DOUBLE NOT NULL,            -- when it was sent, from the level's start
            e2e_s DOUBLE,                      -- NULL exactly when error is set (never a 0)
            ttft_s DOUBLE,                     -- time to the first chunk with text
            itl_s DOUBLE[],                    -- gaps between chunks with text
            prompt_tokens INTEGER,
            output_tokens INTEGER,
            tokens_from VARCHAR,               -- usage | tokenizer | chunks
            status INTEGER,                    -- HTTP status (NULL: no reply)
            error VARCHAR,
            failed_after_s DOUBLE,             -- a failed request: time until it failed
            PRIMARY KEY (load_run_id, level, seq)
        );
        """
    )
