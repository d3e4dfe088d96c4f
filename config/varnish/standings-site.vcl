# Site settings for standings.vcl: where the gateway is, and who may PURGE.
# Copy this file into a folder of your own, edit it, and put that folder
# first on varnishd's vcl_path (-p vcl_path=YOURS:/path/to/config/varnish).
#
# The test harness (test-support/src/varnish.rs) writes its own copy with
# the gateway's test port.

backend gateway {
    .host = "127.0.0.1";
    .port = "8080";
    .connect_timeout = 1s;
    .first_byte_timeout = 5s;
    .between_bytes_timeout = 5s;
}

# Who may PURGE: the gateway purges from the machine Varnish runs on.
# Add the gateways' addresses when they run elsewhere.
acl purgers {
    "127.0.0.1";
    "::1";
}
