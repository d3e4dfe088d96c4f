# Optional: standings.vcl plus purging by surrogate key with the xkey vmod
# (Debian: `apt-get install varnish-modules`). Use this file instead of
# standings.vcl (same vcl_path, same site file) and set
# `cdn.surrogate_key = "xkey"` in the gateway's config: besides the three
# path purges, the gateway then sends one `PURGE /` with
# `xkey-purge: standings-board-{board}`, which drops every object the
# gateway tagged with that key (its `xkey` response header), whatever
# its path.
#
#   varnishd -F -a 127.0.0.1:6081 -f /path/to/config/varnish/standings-xkey.vcl \
#       -p vcl_path=/etc/standings/varnish:/path/to/config/varnish

vcl 4.1;

import xkey;

# This vcl_recv runs before the one in standings.vcl (VCL runs same-named
# subroutines in the order they appear), so a key purge is answered here
# and a path purge falls through to standings.vcl.
sub vcl_recv {
    if (req.method == "PURGE" && req.http.xkey-purge) {
        if (client.ip !~ purgers) {
            return (synth(403, "PURGE is not allowed from this address"));
        }
        set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
}

include "standings.vcl";
