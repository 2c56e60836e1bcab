//! One store and registry test-suite, run against every backend: the local directory and S3
//! (the in-process s3s-fs server, reached over loopback by the real aws-sdk-s3 client).

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod harness;
mod registry_cases;
mod s3_cases;
mod store_cases;
mod upload_cases;

/// Generates `local::<case>` and `s3::<case>` tests from `async fn case(&Backend)`.
macro_rules! for_each_backend {
    ($tests:ident from $module:ident: $($case:ident),* $(,)?) => {
        mod $tests {
            mod local {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let backend = crate::harness::Backend::local().await;
                        crate::$module::$case(&backend).await;
                    }
                )*
            }
            mod s3 {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let backend = crate::harness::Backend::s3().await;
                        crate::$module::$case(&backend).await;
                    }
                )*
            }
        }
    };
}

for_each_backend!(store from store_cases:
    put_then_get_returns_the_same_bytes,
    get_of_a_missing_key_is_not_found,
    create_new_refuses_an_existing_key_and_keeps_its_content,
    overwrite_replaces_the_content,
    list_returns_sorted_keys_below_the_prefix_only,
    list_folders_returns_direct_children,
    delete_removes_only_that_object,
    delete_of_a_missing_key_is_ok_and_the_key_can_be_created_again,
    streamed_put_and_get_round_trip_a_multi_part_object,
    streamed_put_of_a_small_object_round_trips,
    failed_streamed_puts_leave_no_object_and_no_upload,
    streamed_put_replaces_a_damaged_object_and_get_stream_of_a_missing_key_is_not_found,
    a_streamed_put_dropped_half_way_leaves_nothing_behind,
);

for_each_backend!(registry from registry_cases:
    published_version_reads_back_and_loads,
    versions_are_numbered_consecutively_from_one,
    garbage_artifact_is_refused_and_nothing_is_written,
    wrong_upload_digest_is_refused,
    unknown_model_version_and_alias_are_named,
    alias_moves_are_compare_and_swap,
    rollback_returns_to_the_previous_version,
    archived_versions_cannot_be_aliased_and_aliased_ones_cannot_be_archived,
    history_records_who_did_what_and_why_in_order,
    flipped_byte_in_a_stored_artifact_is_refused_on_load,
    truncated_stored_artifact_is_refused_on_load,
    claim_without_manifest_is_invisible_and_its_number_is_skipped,
    stale_alias_head_hint_is_probed_past,
    concurrent_publishes_through_one_registry_get_distinct_consecutive_versions,
    concurrent_alias_moves_with_the_same_expectation_have_one_winner,
    sixty_publishes_with_retention_ten_keep_ten_plus_aliased_artifacts_and_time_travel_answers,
    shared_artifacts_are_deleted_only_when_no_retained_version_references_them,
    kept_and_aliased_versions_survive_retention_and_unkeeping_releases,
    deleted_versions_keep_their_manifest_and_cannot_be_loaded_aliased_or_archived,
    rollbacks_in_a_row_keep_going_back,
    rollback_passes_over_archived_and_deleted_versions,
);

for_each_backend!(upload from upload_cases:
    an_uploaded_artifact_registers_and_streams_back_verified,
    bad_uploads_store_nothing,
    registering_an_artifact_that_is_not_in_the_store_is_refused,
    retention_spares_a_fresh_upload_that_no_version_names_yet,
);
