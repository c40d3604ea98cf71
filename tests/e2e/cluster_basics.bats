#!/usr/bin/env bats
# The e2e cluster itself, and pg_trickle installed on it: two active workers, a
# distributed table placed on both, CREATE EXTENSION pg_trickle on the coordinator reaching
# the workers, and the same stable name for a table on the coordinator and a worker.

load helpers

setup_file() {
    cluster_up
}

setup() {
    skip_without_cluster
}

teardown_file() {
    cluster_down
}

@test "pg_dist_node has two active primary workers" {
    run on coordinator "SELECT count(*) FROM pg_dist_node WHERE isactive AND noderole = 'primary' AND groupid <> 0"
    [ "$status" -eq 0 ]
    [ "$output" = 2 ]
    run on coordinator "SELECT string_agg(nodeport::text, ',' ORDER BY nodeport) FROM pg_dist_node WHERE groupid <> 0"
    [ "$output" = "$(port_of worker1),$(port_of worker2)" ]
}

@test "a distributed table has shards on both workers" {
    on coordinator "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount int)"
    on coordinator "SELECT create_distributed_table('orders', 'id')"
    on coordinator "INSERT INTO orders SELECT g, g % 10, g FROM generate_series(1, 1000) g"
    run on coordinator "SELECT string_agg(DISTINCT nodeport::text, ',' ORDER BY nodeport::text) FROM citus_shards WHERE table_name = 'orders'::regclass"
    [ "$status" -eq 0 ]
    [ "$output" = "$(port_of worker1),$(port_of worker2)" ]
    run on coordinator "SELECT count(*) FROM orders"
    [ "$output" = 1000 ]
}

@test "CREATE EXTENSION pg_trickle on the coordinator reaches both workers" {
    on coordinator "CREATE EXTENSION pg_trickle"
    local version
    version=$(on coordinator "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'")
    [ -n "$version" ]
    run on worker1 "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'"
    [ "$output" = "$version" ]
    run on worker2 "SELECT extversion FROM pg_extension WHERE extname = 'pg_trickle'"
    [ "$output" = "$version" ]
}

@test "source_stable_name of a table is the same on the coordinator and a worker" {
    local c w
    c=$(on coordinator "SELECT pgtrickle.source_stable_name('public.orders'::regclass)")
    w=$(on worker1 "SELECT pgtrickle.source_stable_name('public.orders'::regclass)")
    [[ "$c" =~ ^[0-9a-f]{16}$ ]]
    [ "$c" = "$w" ]
}
