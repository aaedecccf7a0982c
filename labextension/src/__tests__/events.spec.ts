import { EventStreamParser } from '../events';

describe('EventStreamParser', () => {
  it('yields frames only once they are complete, across chunks', () => {
    const parser = new EventStreamParser();
    expect(parser.push('event: requested\ndata: {"stage":')).toEqual([]);
    expect(parser.push('"requested"}\n\nevent: ready\n')).toEqual([
      { event: 'requested', data: '{"stage":"requested"}' }
    ]);
    expect(parser.push('data: {"stage":"ready"}\n\n')).toEqual([
      { event: 'ready', data: '{"stage":"ready"}' }
    ]);
  });

  it('skips keep-alive comments and accepts CRLF', () => {
    const parser = new EventStreamParser();
    expect(parser.push(': still starting\r\n\r\ndata: x\r\n\r\n')).toEqual([
      { event: 'message', data: 'x' }
    ]);
  });
});
