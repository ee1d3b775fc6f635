"""The console: web pages for coordinators (their live support list) and IG officers
(governance), served by `accord console`. See `accord.console.app` for how pages are
added."""
