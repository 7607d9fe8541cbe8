// `{{name}}`: a Tessera push connector. Parses lines of
// `email,event_type,amount` (a header line is skipped) into events.
//
// Every record carries a source id, so the host stores the same line once
// however often the file is imported; a bad line is rejected with its row
// number and reason while the good lines of the same file are kept.
//
// The host may cut a large file into chunks of whole lines and call `parse`
// once per chunk, passing `first_row`, the file line number of the chunk's
// first line: rows, and the source ids made from them, are the file's line
// numbers wherever the chunks were cut.

import {
  Identity, Manifest, Modes, ParamSpec, ParseOutput, PluginError, Record, Rejection, Value,
  fieldValue, host,
} from 'tessera-sdk';

export default {
  describe() {
    return new Manifest('{{name}}', '0.1.0', 'Parses `email,event_type,amount` lines into events')
      .param(
        ParamSpec.integer('first_row', "File line number of the chunk's first line (set by the host)")
          .range(1, 4294967295)
          .default(Value.integer(1)),
      );
  },

  modes() {
    return Modes.PUSH;
  },

  parse(params, data) {
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    } catch (e) {
      throw PluginError.input(`not UTF-8: ${e.message}`);
    }
    // Absent when the whole file is one call.
    const firstRow = params.get('first_row') === undefined ? 1 : params.integer('first_row');
    const now = host.now();
    const out = new ParseOutput();
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    lines.forEach((raw, index) => {
      const row = Math.min(firstRow + index, 4294967295);
      const line = raw.trim();
      if (line === '' || line.startsWith('email,')) return;
      const fields = line.split(',').map((f) => f.trim());
      if (fields.length !== 3) {
        out.rejections.push(new Rejection(row, undefined, 'expected 3 fields: email,event_type,amount'));
        return;
      }
      const [email, eventType, amountText] = fields;
      const amount = Number(amountText);
      if (amountText === '' || !Number.isFinite(amount)) {
        out.rejections.push(new Rejection(row, 'amount', `\`${amountText}\` is not a number`));
        return;
      }
      out.records.push(Record.event({
        sourceId: `{{name}}:${row}:${email}:${eventType}`,
        eventType,
        at: now,
        identities: [new Identity('email', email)],
        properties: [fieldValue('amount', Value.number(amount))],
      }));
    });
    return out;
  },
};
