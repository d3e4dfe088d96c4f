# Site settings for standings.vcl: where the gateway is, who may PURGE, and
# who may reach the operators' paths (/metrics, /v1/admin/...).
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

# Who may reach /metrics and /v1/admin/... through Varnish (everyone else
# gets 403 from Varnish; the gateway never sees the request): the machine
# Varnish runs on. Add your monitoring and operators' addresses here.
# standings.vcl does not compile without this ACL: a site file written
# before it existed needs these lines added.
acl operators {
    "127.0.0.1";
    "::1";
}
