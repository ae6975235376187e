// Starts Swagger UI (/docs) or ReDoc (/redoc) on #api-docs. An external file, so that the
// strict Content-Security-Policy (no inline script) holds on these pages too.
(function () {
  "use strict";
  function start() {
    var el = document.getElementById("api-docs");
    if (!el) return;
    var url = el.getAttribute("data-openapi-url");
    var csrf = el.getAttribute("data-csrf-token");
    if (el.getAttribute("data-viewer") === "swagger" && window.SwaggerUIBundle) {
      window.SwaggerUIBundle({
        url: url,
        domNode: el,
        deepLinking: true,
        validatorUrl: null, // no call to an outside validator
        presets: [window.SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
        // "Try it out" with the signed-in session: state-changing calls need the CSRF token.
        requestInterceptor: function (req) {
          if (csrf && req.method && req.method.toUpperCase() !== "GET") {
            req.headers["X-CSRF-Token"] = csrf;
          }
          return req;
        },
      });
    } else if (window.Redoc) {
      window.Redoc.init(url, { disableSearch: false }, el);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
