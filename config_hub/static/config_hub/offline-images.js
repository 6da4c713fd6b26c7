// The API docs are served offline (API.md) under a Content-Security-Policy that
// allows images from this origin only. Redoc's bundle shows Redocly's logo from
// cdn.redoc.ly in its footer, with no option to turn it off: an image of another
// origin becomes a transparent pixel here instead of a blocked request.
(function () {
  "use strict";
  var PIXEL = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==";
  function foreign(value) {
    var text = String(value);
    return /^https?:\/\//i.test(text) && text.indexOf(window.location.origin + "/") !== 0;
  }
  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (this.tagName === "IMG" && String(name).toLowerCase() === "src" && foreign(value)) value = PIXEL;
    return setAttribute.call(this, name, value);
  };
  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true, enumerable: src.enumerable, get: src.get,
    set: function (value) { src.set.call(this, foreign(value) ? PIXEL : value); }
  });
})();
