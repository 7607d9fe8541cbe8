// The marketer's pages of the console (imports, profiles, segments,
// campaigns). Each page follows the contract of operator.js.

export const strings = { en: {}, 'zh-CN': {} };
export const pages = [];
