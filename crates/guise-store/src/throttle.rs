//! `LoginThrottleStore` on diesel: one counter row per account or address.

use crate::connection::Database;
use crate::convert::{from_millis, millis};
use crate::schema::login_throttle;
use diesel::prelude::*;
use guise_core::store::{LoginThrottleStore, StoreResult};
use guise_core::throttle::ThrottleCounter;

impl LoginThrottleStore for Database {
    fn throttle_counter(&self, key: &str) -> StoreResult<Option<ThrottleCounter>> {
        self.run(|| {
            let row: Option<(i64, i64, Option<i64>)> = login_throttle::table
                .find(key)
                .select((login_throttle::failures, login_throttle::window_started_at, login_throttle::locked_until))
                .first(&mut self.conn()?)
                .optional()?;
            Ok(row.map(|(failures, window, locked)| ThrottleCounter {
                key: key.to_owned(),
                failures,
                window_started_at: from_millis(window),
                locked_until: locked.map(from_millis),
            }))
        })
    }

    fn save_throttle_counter(&self, c: &ThrottleCounter) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![], |conn| {
                diesel::delete(login_throttle::table.find(&c.key)).execute(conn)?;
                diesel::insert_into(login_throttle::table)
                    .values((
                        login_throttle::throttle_key.eq(&c.key),
                        login_throttle::failures.eq(c.failures),
                        login_throttle::window_started_at.eq(millis(c.window_started_at)),
                        login_throttle::locked_until.eq(c.locked_until.map(millis)),
                    ))
                    .execute(conn)?;
                Ok(())
            })?;
            Ok(())
        })
    }

    fn clear_throttle_counter(&self, key: &str) -> StoreResult<()> {
        self.run(|| {
            diesel::delete(login_throttle::table.find(key)).execute(&mut self.conn()?)?;
            Ok(())
        })
    }
}
