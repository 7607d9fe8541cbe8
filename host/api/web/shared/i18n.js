// Page text in several languages: the person's own choice (kept in this
// browser), else the language the server chose from Accept-Language (the
// page's `lang`), else the browser's languages; switchable at any time.

export class I18n {
  /** `strings`: {'en': {key: text}, 'zh-CN': {...}}; the first is the fallback. */
  constructor(strings, storageKey) {
    this.strings = strings;
    this.storageKey = storageKey;
    this.languages = Object.keys(strings);
    this.listeners = [];
    this.lang = this.initial();
  }

  initial() {
    const stored = safeGet(this.storageKey);
    if (stored && this.languages.includes(stored)) return stored;
    const candidates = [document.documentElement.lang, ...(navigator.languages || [])];
    for (const candidate of candidates) {
      const match = this.match(candidate);
      if (match) return match;
    }
    return this.languages[0];
  }

  /** The supported language closest to the BCP 47 tag `tag`. */
  match(tag) {
    if (!tag) return null;
    const lower = tag.toLowerCase();
    return (
      this.languages.find((l) => l.toLowerCase() === lower) ||
      this.languages.find((l) => l.split('-')[0].toLowerCase() === lower.split('-')[0]) ||
      null
    );
  }

  set(lang) {
    if (!this.languages.includes(lang)) return;
    this.lang = lang;
    safeSet(this.storageKey, lang);
    document.documentElement.lang = lang;
    for (const listener of this.listeners) listener(lang);
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  /**
   * The text of `key` with `{name}` placeholders filled from `params`, and
   * `{name:one|other}` choosing the word by the number `params[name]` and
   * the language's plural rules ("1 profile", "2 profiles").
   */
  t(key, params) {
    const table = this.strings[this.lang] || {};
    const fallback = this.strings[this.languages[0]] || {};
    let text = key in table ? table[key] : key in fallback ? fallback[key] : key;
    const rules = new Intl.PluralRules(this.lang);
    text = text.replace(/\{(\w+):([^|{}]*)\|([^{}]*)\}/g, (whole, name, one, other) => {
      if (!params || !(name in params)) return whole;
      return rules.select(Number(params[name])) === 'one' ? one : other;
    });
    for (const [name, value] of Object.entries(params || {})) {
      text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  /** Whether `key` has a text (to fall back on a raw name when not). */
  has(key) {
    return key in (this.strings[this.lang] || {}) || key in (this.strings[this.languages[0]] || {});
  }

  /** Fills every `[data-i18n]` element's text, and `[data-i18n-attr]`
   *  ("attr:key;attr:key") attributes, under `root`. */
  apply(root) {
    for (const element of root.querySelectorAll('[data-i18n]')) {
      element.textContent = this.t(element.dataset.i18n);
    }
    for (const element of root.querySelectorAll('[data-i18n-attr]')) {
      for (const pair of element.dataset.i18nAttr.split(';')) {
        const [attribute, key] = pair.split(':');
        if (attribute && key) element.setAttribute(attribute.trim(), this.t(key.trim()));
      }
    }
  }

  date(ms) {
    if (ms === null || ms === undefined) return '—';
    return new Intl.DateTimeFormat(this.lang, { dateStyle: 'medium', timeStyle: 'short' }).format(
      new Date(ms),
    );
  }

  day(ms) {
    if (ms === null || ms === undefined) return '—';
    return new Intl.DateTimeFormat(this.lang, { dateStyle: 'long' }).format(new Date(ms));
  }

  number(value) {
    return new Intl.NumberFormat(this.lang).format(value);
  }
}

function safeGet(key) {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

function safeSet(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // Storage off (private mode): the choice lasts for this page only.
  }
}
