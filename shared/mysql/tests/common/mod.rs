//! The server fixture the binlog and snapshot tests share.

use cdc_localdb::{LocalMariaDb, LocalMariaDbOptions};
use cdc_mysql::SourceOptions;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// A private MariaDB (kept alive by the fixture), connection settings for its `cdc` user and a
/// session connection as that user.
pub struct Fixture {
    pub _db: LocalMariaDb,
    pub opts: SourceOptions,
    pub conn: Conn,
}

/// A server with database `shop` writable by the `cdc` user, started with `extra_args`, and a
/// connection as that user in UTC with an empty sql_mode (zero dates allowed).
pub async fn fixture(extra_args: &[&str]) -> Fixture {
    let db = LocalMariaDb::start_with(LocalMariaDbOptions {
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .expect("start MariaDB");
    db.execute(&format!("CREATE DATABASE shop; GRANT ALL ON shop.* TO '{}'@'%'", db.user())).expect("grant");
    let opts = SourceOptions {
        host: db.host().into(),
        port: db.port(),
        user: db.user().into(),
        password: db.password().into(),
        schema: "shop".into(),
        tls: Default::default(),
    };
    let mut conn = opts.connect().await.expect("connect");
    conn.query_drop("SET time_zone = '+00:00', sql_mode = ''").await.expect("session");
    Fixture { _db: db, opts, conn }
}

/// The table with every column type the capture supports, shared by the binlog and
/// snapshot suites, and rows that reach each type's extremes, NULLs and ordinary values.
pub const ALL_TYPES: &str = "CREATE TABLE shop.all_types (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
    d DECIMAL(65,30), d2 DECIMAL(10,2) UNSIGNED, f FLOAT, db DOUBLE,
    dt DATE, tm TIME, tm6 TIME(6), dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL, yr YEAR,
    c CHAR(10), vc VARCHAR(100) CHARACTER SET utf8mb4, vcl VARCHAR(50) CHARACTER SET latin1,
    tx TEXT CHARACTER SET utf8mb3, ltx LONGTEXT CHARACTER SET latin1,
    bn BINARY(6), vb VARBINARY(20), bl BLOB, lb LONGBLOB,
    js JSON, en ENUM('small','medium','large'), enl ENUM('é','ü') CHARACTER SET latin1, st SET('a','b','c','d'),
    bt BIT(12), b64 BIT(64), b1 BIT(1), g GEOMETRY, pt POINT, ts3 TIMESTAMP(3) NULL, nn INT NOT NULL DEFAULT 7
) DEFAULT CHARSET=utf8mb4";

pub const EXTREMES: &str = "INSERT INTO shop.all_types VALUES (1,
    -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
    -9223372036854775808, 18446744073709551615,
    '-12345678901234567890123456789012345.123456789012345678901234567890', 99999999.99, -3.40282e38, -1.7976931348623157e308,
    '0000-00-00', '-838:59:59', '-01:02:03.500001', '0000-00-00 00:00:00', '9999-12-31 23:59:59.999999',
    '2038-01-19 03:14:07.999999', '1970-01-01 00:00:01', 0,
    'pad  ', '😀 four-byte ✓ ñ', 'café € ÿ', 'utf8mb3 ü', CONCAT('latin1 €', REPEAT('x', 300)),
    X'000100', X'00FF00', X'00', X'DEADBEEF00',
    '{\"a\": [1, 2.5, \"x\"], \"b\": null}', 'large', 'ü', 'a,d',
    b'101010101010', 18446744073709551615, b'1', ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))', 4326), POINT(1.5, -2.5),
    '0000-00-00 00:00:00', -1)";

pub const ORDINARY: &str = "INSERT INTO shop.all_types VALUES (3,
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    '0.000000000000000000000000000001', 0, 0.5, 0.1,
    '2024-02-29', '838:59:59', '00:00:00.000001', '2024-02-29 12:34:56', '2000-01-01 00:00:00.000001',
    '2024-06-01 12:00:00.5', '2024-06-01 12:00:00', 2155,
    'c', '', 'plain', '', '',
    'ab', '', '', '',
    '[]', 'small', 'é', '',
    b'0', 0, b'0', POINT(0, 0), POINT(1, 1), '2024-06-01 12:00:00.123', 0)";
