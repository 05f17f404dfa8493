// A room's event stream (dualviz.service.rooms), shared by the room component
// (dualviz/ui/rooms.py) and the live panel (live_chart.js): prepended to each one's module.
//
// EventSource retries a dropped connection by itself, but not an HTTP error: a room that
// lapsed for a moment (404), a server at its stream cap (503). Then it is asked again 2 s,
// 4 s, ... up to 30 s apart. Streamlit removes the element of a run that no longer draws it
// (a follower that detached) without a cleanup call: the stream closes once `element` is gone.
// listeners: event name -> function(data) (the event's JSON); returns {close()}.
function openRoomStream(url, element, listeners) {
  const stream = { source: null, wait: 0, closed: false };
  stream.close = () => {
    stream.closed = true;
    if (stream.source) stream.source.close();
    stream.source = null;
  };
  const open = () => {
    const source = stream.source = new EventSource(url);
    for (const [name, listener] of Object.entries(listeners)) {
      source.addEventListener(name, (ev) => {
        stream.wait = 0;
        if (!stream.closed) listener(JSON.parse(ev.data));
      });
    }
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED || stream.source !== source) return;
      stream.wait = Math.min(Math.max(2 * stream.wait, 2000), 30000);
      setTimeout(() => { if (element.isConnected && !stream.closed) open(); },
                 stream.wait * (0.75 + Math.random() / 2));
    });
  };
  open();
  const gone = setInterval(() => {
    if (element.isConnected && !stream.closed) return;
    clearInterval(gone);
    stream.close();
  }, 1000);
  return stream;
}
