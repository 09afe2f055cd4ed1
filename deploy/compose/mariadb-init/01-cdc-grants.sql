-- Run once, on the first start of the MariaDB data volume (docker-entrypoint-initdb.d, as the
-- official image does): the privileges cdc-capture's pre-flight check asks for. The account is
-- created by the image from MARIADB_USER / MARIADB_PASSWORD_FILE; change the name here too if
-- DATABASE_USERNAME is not `cdc`.
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'cdc'@'%';
