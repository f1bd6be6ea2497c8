//! The shard map: an ordered list of ID ranges. Routing is a pure function, tested on
//! its own, with no pools or I/O.

use crate::domain::ids::Snowflake;

/// Ranges of the ID space, each starting at `starts[i]` and running to the next start;
/// the last is open-ended. IDs below the first start belong to no shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    starts: Vec<u64>,
}

/// The starts are not strictly increasing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard range #{index} does not start after the one before it")]
pub struct UnorderedRanges {
    pub index: usize,
}

impl ShardMap {
    /// A map from range starts, which must be strictly increasing.
    ///
    /// # Errors
    /// [`UnorderedRanges`] naming the first range out of order.
    pub fn new(starts: Vec<Snowflake>) -> Result<Self, UnorderedRanges> {
        let starts: Vec<u64> = starts.into_iter().map(Snowflake::get).collect();
        if let Some(index) = starts.windows(2).position(|w| w[0] >= w[1]) {
            return Err(UnorderedRanges { index: index + 1 });
        }
        Ok(Self { starts })
    }

    /// The index of the shard whose range holds `id` (binary search).
    pub fn shard_for(&self, id: Snowflake) -> Option<usize> {
        self.starts
            .partition_point(|start| *start <= id.get())
            .checked_sub(1)
    }

    /// How many ranges there are.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when there are no ranges.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(v: u64) -> Snowflake {
        Snowflake::from_u64(v).unwrap()
    }

    #[test]
    fn ids_route_to_the_range_that_holds_them() {
        let map = ShardMap::new(vec![id(100), id(200), id(300)]).unwrap();
        let cases = [
            (0, None, "before the first range"),
            (99, None, "just before the first range"),
            (100, Some(0), "first ID of the first range"),
            (199, Some(0), "last ID of the first range"),
            (200, Some(1), "boundary belongs to the later range"),
            (300, Some(2), "last range starts"),
            (i64::MAX as u64, Some(2), "last range is open-ended"),
        ];
        for (value, expected, why) in cases {
            assert_eq!(map.shard_for(id(value)), expected, "{why}");
        }
    }

    #[test]
    fn unordered_or_equal_starts_are_refused() {
        assert_eq!(
            ShardMap::new(vec![id(1), id(3), id(2)]),
            Err(UnorderedRanges { index: 2 })
        );
        assert!(ShardMap::new(vec![id(1), id(1)]).is_err());
    }

    proptest! {
        #[test]
        fn binary_search_agrees_with_a_linear_scan(
            mut starts in proptest::collection::btree_set(0u64..1_000_000, 1..20),
            probe in 0u64..1_100_000,
        ) {
            let starts: Vec<u64> = std::mem::take(&mut starts).into_iter().collect();
            let map = ShardMap::new(starts.iter().copied().map(id).collect()).unwrap();
            let linear = starts.iter().rposition(|s| *s <= probe);
            prop_assert_eq!(map.shard_for(id(probe)), linear);
        }
    }
}
