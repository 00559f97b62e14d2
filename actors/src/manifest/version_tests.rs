//! Versions and retention as pure values: the builders' rules, the invariants, SST id ranges,
//! the time index and the time-travel horizon by count and by age.

use std::time::Duration;

use super::{
    Retention, SST_IDS_PER_EPOCH, SstDescriptor, TIME_INDEX_MARKS, TimeMark, Version, VersionError,
    hex, sst_id_from_path, sst_id_range, sst_path,
};
use crate::table::KeyBytes;

fn key(value: u64) -> KeyBytes {
    KeyBytes::from_slice(&value.to_be_bytes())
}

fn descriptor(id: u64, level: u32, keys: (u64, u64), timestamps: (u64, u64)) -> SstDescriptor {
    SstDescriptor {
        id,
        level,
        rows: 10,
        bytes: 1000,
        min_key: key(keys.0),
        max_key: key(keys.1),
        min_timestamp: timestamps.0,
        max_timestamp: timestamps.1,
        deletes: 0,
        unique_keys: true,
        footer_bytes: 100,
        footer_crc32c: 0x1234_5678,
    }
}

/// The claimed version of a new database (epoch 1) and its first SST id.
fn claimed() -> (Version, u64) {
    let version = Version::empty(0).claimed().expect("an epoch");
    let first_id = version.next_sst_id;
    (version, first_id)
}

fn marks(pairs: &[(u64, u64)]) -> Vec<TimeMark> {
    pairs
        .iter()
        .map(|&(commit, wall_ms)| TimeMark { commit, wall_ms })
        .collect()
}

#[test]
fn sst_paths_and_id_ranges() {
    assert_eq!(sst_path(7), "sst/00000000000000000007.parquet");
    assert!(sst_path(99) < sst_path(100));
    assert_eq!(sst_id_from_path(&sst_path(7)), Some(7));
    assert_eq!(sst_id_from_path("sst/7.parquet"), None);
    assert_eq!(sst_id_from_path("wal/00000000000000000007.wal"), None);
    assert_eq!(sst_id_range(0), Some(0..SST_IDS_PER_EPOCH));
    assert_eq!(
        sst_id_range(2),
        Some(2 * SST_IDS_PER_EPOCH..3 * SST_IDS_PER_EPOCH)
    );
    assert_eq!(sst_id_range(u64::MAX / SST_IDS_PER_EPOCH), None);
    let last = Version::empty(u64::MAX / SST_IDS_PER_EPOCH - 1);
    assert!(matches!(
        last.claimed(),
        Err(VersionError::EpochsExhausted { .. })
    ));
}

#[test]
fn a_claim_moves_the_next_id_into_the_new_epoch() {
    let (first, first_id) = claimed();
    assert_eq!((first.number, first.epoch), (1, 1));
    assert_eq!(first_id, SST_IDS_PER_EPOCH);
    let with_sst = first
        .successor()
        .with_sst_added(descriptor(first_id, 0, (1, 5), (1, 3)))
        .expect("valid");
    let second = with_sst.claimed().expect("an epoch");
    assert_eq!((second.number, second.epoch), (3, 2));
    assert_eq!(second.next_sst_id, 2 * SST_IDS_PER_EPOCH);
    assert_eq!(second.levels, with_sst.levels);
    // The new writer may not add ids of the old writer's range.
    let stale_id = descriptor(first_id + 1, 0, (1, 5), (4, 4));
    assert!(matches!(
        second.successor().with_sst_added(stale_id),
        Err(VersionError::SstIdOutsideEpoch { epoch: 2, .. })
    ));
}

#[test]
fn level_zero_is_newest_first_and_deeper_levels_are_sorted_by_key() {
    let (mut version, id) = claimed();
    for (offset, level, keys, timestamp) in [
        (0, 0, (10, 20), 1),
        (1, 0, (5, 50), 3),
        (2, 0, (0, 90), 2),
        (3, 1, (60, 70), 1),
        (4, 1, (0, 9), 1),
        (5, 1, (30, 40), 2),
    ] {
        let sst = descriptor(id + offset, level, keys, (timestamp, timestamp));
        version = version.with_sst_added(sst).expect("valid");
    }
    let level = |index: usize| -> Vec<u64> {
        version.levels[index]
            .iter()
            .map(|sst| sst.id - id)
            .collect()
    };
    assert_eq!(level(0), vec![1, 2, 0]);
    assert_eq!(level(1), vec![4, 5, 3]);
    assert_eq!(version.last_commit, 3);
    assert_eq!(version.next_sst_id, id + 6);
    assert_eq!(version.ssts().count(), 6);
    assert_eq!(version.sst(id + 5).map(|sst| sst.level), Some(1));
    version
        .validate()
        .expect("the builders keep every invariant");
}

#[test]
fn replacing_ssts_requires_live_inputs() {
    let (version, id) = claimed();
    let version = version
        .with_sst_added(descriptor(id, 0, (1, 5), (1, 1)))
        .and_then(|version| version.with_sst_added(descriptor(id + 1, 0, (3, 9), (2, 2))))
        .expect("valid");
    let output = descriptor(id + 2, 1, (1, 9), (1, 2));
    let compacted = version
        .clone()
        .with_ssts_replaced(&[id, id + 1], vec![output.clone()])
        .expect("valid");
    assert_eq!(compacted.levels, vec![vec![], vec![output.clone()]]);
    // A duplicated or stale job: its inputs are gone.
    assert_eq!(
        compacted
            .clone()
            .with_ssts_replaced(&[id], vec![descriptor(id + 3, 1, (1, 5), (1, 1))]),
        Err(VersionError::SstNotLive { id })
    );
    // Re-adding a live id.
    assert_eq!(
        compacted.clone().with_sst_added(output.clone()),
        Err(VersionError::DuplicateSst { id: id + 2 })
    );
    // A move to a deeper level keeps the id; trailing empty levels go away.
    let moved = SstDescriptor {
        level: 2,
        ..output.clone()
    };
    let moved_version = compacted
        .with_ssts_replaced(&[id + 2], vec![moved.clone()])
        .expect("valid");
    assert_eq!(moved_version.levels, vec![vec![], vec![], vec![moved]]);
    let back = moved_version
        .with_ssts_replaced(&[id + 2], vec![output.clone()])
        .expect("valid");
    assert_eq!(back.levels.len(), 2);
}

#[test]
fn malformed_ssts_are_refused() {
    let (version, id) = claimed();
    let good = descriptor(id, 0, (1, 5), (1, 1));
    let bad = [
        SstDescriptor {
            rows: 0,
            ..good.clone()
        },
        SstDescriptor {
            deletes: 11,
            ..good.clone()
        },
        SstDescriptor {
            min_key: key(6),
            ..good.clone()
        },
        SstDescriptor {
            min_timestamp: 0,
            ..good.clone()
        },
        SstDescriptor {
            min_timestamp: 2,
            ..good.clone()
        },
        SstDescriptor {
            level: 64,
            ..good.clone()
        },
        SstDescriptor {
            footer_bytes: 7,
            ..good.clone()
        },
        SstDescriptor {
            footer_bytes: good.bytes + 1,
            ..good.clone()
        },
    ];
    for sst in bad {
        assert!(
            matches!(
                version.clone().with_sst_added(sst.clone()),
                Err(VersionError::InvalidSst { .. })
            ),
            "{sst:?}"
        );
    }
}

#[test]
fn floors_and_the_last_commit_never_go_back() {
    let (version, id) = claimed();
    let version = version
        .with_sst_added(descriptor(id, 0, (1, 5), (1, 4)))
        .and_then(|version| version.with_wal_floor(3))
        .expect("valid");
    assert!(version.clone().with_wal_floor(2).is_err(), "lowered");
    assert!(
        version.clone().with_wal_floor(5).is_err(),
        "past the last commit"
    );
    assert!(version.clone().with_last_commit(3).is_err(), "lowered");
    let later = version.clone().with_last_commit(9).expect("raised");
    assert_eq!(
        later.clone().with_wal_floor(9).expect("raised").wal_floor,
        9
    );
    let floored = later.with_history_floor(6).expect("raised");
    assert_eq!(
        floored
            .clone()
            .with_history_floor(2)
            .expect("kept")
            .history_floor,
        6
    );
    assert!(
        floored.with_history_floor(10).is_err(),
        "past the last commit"
    );
}

#[test]
fn validate_catches_what_hand_made_versions_get_wrong() {
    let (version, id) = claimed();
    let version = version
        .with_sst_added(descriptor(id, 0, (1, 5), (1, 4)))
        .expect("valid");
    let mut broken = Vec::new();
    let mut misplaced = version.clone();
    misplaced.levels[0][0].level = 1;
    broken.push(misplaced);
    let mut duplicated = version.clone();
    duplicated.levels.push(vec![SstDescriptor {
        level: 1,
        ..duplicated.levels[0][0].clone()
    }]);
    broken.push(duplicated);
    broken.push(Version {
        next_sst_id: id,
        ..version.clone()
    });
    broken.push(Version {
        last_commit: 3,
        wal_floor: 0,
        ..version.clone()
    });
    broken.push(Version {
        next_sst_id: 2 * SST_IDS_PER_EPOCH + 1,
        ..version.clone()
    });
    broken.push(Version {
        time_index: marks(&[(2, 10), (2, 20)]),
        ..version.clone()
    });
    broken.push(Version {
        time_index: marks(&[(2, 10), (3, 5)]),
        ..version.clone()
    });
    broken.push(Version {
        time_index: marks(&[(5, 10)]),
        ..version.clone()
    });
    broken.push(Version {
        levels: vec![Vec::new(); 65],
        ..version.clone()
    });
    for version in broken {
        assert!(version.validate().is_err(), "{version:?}");
    }
}

#[test]
fn the_horizon_by_count_keeps_the_newest_commit_timestamps() {
    let keep = |versions| Retention {
        versions: Some(versions),
        age: None,
    };
    assert_eq!(keep(3).horizon(10, &[], 0), 8);
    assert_eq!(keep(1).horizon(10, &[], 0), 10);
    assert_eq!(keep(0).horizon(10, &[], 0), 10, "the newest is always kept");
    assert_eq!(keep(11).horizon(10, &[], 0), 0);
    assert_eq!(keep(100).horizon(10, &[], 0), 0);
    assert_eq!(keep(3).horizon(0, &[], 0), 0);
    assert_eq!(Retention::KEEP_ALL.horizon(10, &[], 0), 0);
}

#[test]
fn the_horizon_by_age_only_passes_commits_proven_old() {
    let index = marks(&[(5, 1_000), (9, 2_000), (12, 3_000)]);
    let age = |ms| Retention {
        versions: None,
        age: Some(Duration::from_millis(ms)),
    };
    // Cut-off 2_100: marks 5 and 9 are older, so commit 9 (the version current at the
    // cut-off, as far as the index knows) is the horizon.
    assert_eq!(age(1_500).horizon(12, &index, 3_600), 9);
    // Exactly at the cut-off is not older.
    assert_eq!(age(1_600).horizon(12, &index, 3_600), 5);
    // Nothing proven old: keep everything.
    assert_eq!(age(1_500).horizon(12, &index, 2_400), 0);
    assert_eq!(age(1_500).horizon(12, &[], 1_000_000), 0);
    // Everything old: the newest mark, never past the newest commit.
    assert_eq!(age(1).horizon(12, &index, 1_000_000), 12);
    assert_eq!(age(1).horizon(10, &index, 1_000_000), 10);
    // A clock that ran backwards inside an index only makes the horizon older.
    let skewed = marks(&[(5, 1_000), (9, 5_000), (12, 2_000)]);
    assert_eq!(age(100).horizon(12, &skewed, 3_000), 5);
    // Both rules: a version is kept if either keeps it.
    let both = Retention {
        versions: Some(2),
        age: Some(Duration::from_millis(1_500)),
    };
    assert_eq!(both.horizon(12, &index, 3_600), 9);
    assert_eq!(both.horizon(12, &index, 100_000), 11);
}

#[test]
fn the_oldest_timestamp_is_never_older_than_the_history_floor() {
    let (version, id) = claimed();
    let version = version
        .with_sst_added(descriptor(id, 0, (1, 5), (1, 20)))
        .and_then(|version| version.with_history_floor(15))
        .expect("valid");
    let keep_five = Retention {
        versions: Some(5),
        age: None,
    };
    assert_eq!(version.oldest_timestamp(&keep_five, 0), 16);
    let keep_all_commits = Retention {
        versions: Some(100),
        age: None,
    };
    assert_eq!(version.oldest_timestamp(&keep_all_commits, 0), 15);
    assert_eq!(version.oldest_timestamp(&Retention::KEEP_ALL, 0), 15);
}

/// One commit and one publish per second for `seconds`; returns the version.
fn publish_every_second(seconds: u64, retention: &Retention) -> Version {
    let (mut version, _) = claimed();
    for second in 1..=seconds {
        version = version
            .successor()
            .with_last_commit(second)
            .expect("raised")
            .with_time_mark(second * 1_000, retention);
        version.validate().expect("the time index stays valid");
    }
    version
}

#[test]
fn the_time_index_stays_small_and_the_age_horizon_stays_close() {
    let hour = Duration::from_secs(3_600);
    let retention = Retention {
        versions: None,
        age: Some(hour),
    };
    let seconds = 4 * 3_600;
    let version = publish_every_second(seconds, &retention);
    let marks = version.time_index.len() as u64;
    assert!(marks <= TIME_INDEX_MARKS * 11 / 10, "{marks} marks");
    assert!(marks >= TIME_INDEX_MARKS / 2, "{marks} marks");
    // Commit c happened at second c: the exact horizon (newest commit older than an hour) is
    // `seconds - 3_600 - 1`. The index may only err towards older, by about one spacing.
    let now_ms = seconds * 1_000;
    let exact = seconds - 3_600 - 1;
    let horizon = version.oldest_timestamp(&retention, now_ms);
    let spacing_commits = 3_600 / TIME_INDEX_MARKS + 1;
    assert!(
        horizon <= exact,
        "horizon {horizon} passes the exact {exact}"
    );
    assert!(
        exact - horizon <= spacing_commits,
        "horizon {horizon}, exact {exact}"
    );
    // Later, with no new publish, the horizon moves on as the clock does.
    let later = version.oldest_timestamp(&retention, now_ms + 1_800_000);
    assert!(later > horizon && later <= exact + 1_800, "{later}");
}

#[test]
fn without_an_age_rule_only_the_newest_mark_is_kept() {
    let version = publish_every_second(100, &Retention::KEEP_ALL);
    assert_eq!(
        version.time_index,
        marks(&[(100, 100_000)]),
        "only the newest mark"
    );
}

#[test]
fn a_clock_running_backwards_leaves_the_index_ordered() {
    let retention = Retention {
        versions: None,
        age: Some(Duration::from_secs(60)),
    };
    let (mut version, _) = claimed();
    for (commit, wall_ms) in [(1, 50_000), (2, 40_000), (3, 45_000), (4, 200_000), (4, 10)] {
        version = version
            .successor()
            .with_last_commit(commit)
            .expect("raised")
            .with_time_mark(wall_ms, &retention);
        version.validate().expect("an ordered index");
    }
    assert!(version.time_index.iter().all(|mark| mark.wall_ms >= 50_000));
    assert_eq!(version.time_index.last().map(|mark| mark.commit), Some(4));
}

#[test]
fn hex_keys_decode_strictly() {
    assert_eq!(hex::decode("00ff7A").expect("hex"), vec![0x00, 0xff, 0x7a]);
    assert_eq!(hex::decode("").expect("hex"), Vec::<u8>::new());
    assert!(hex::decode("abc").is_err());
    assert!(hex::decode("0g").is_err());
    assert!(hex::decode("é0").is_err());
}
