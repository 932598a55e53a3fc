"""A small Quix Streams application, written as for any Kafka cluster.

It reads sentences from ``text-input``, splits them into words, keeps a running count
per word in Quix's state store (which Quix backs with a compacted changelog topic), and
writes ``{"word": ..., "count": ...}`` to ``word-counts``. The broker address comes from
the environment (``Quix__Broker__Address``), as Quix applications are usually deployed.
"""

from quixstreams import Application


def main() -> None:
    app = Application(consumer_group="word-counter", auto_offset_reset="earliest",
                      commit_interval=1.0, loglevel="WARNING")
    sentences = app.topic("text-input", value_deserializer="json")
    counts = app.topic("word-counts", value_serializer="json")

    def count_words(row: dict, state) -> list:  # type: ignore[no-untyped-def]
        out = []
        for word in row["text"].lower().split():
            total = state.get(word, 0) + 1
            state.set(word, total)
            out.append({"word": word, "count": total})
        return out

    sdf = app.dataframe(sentences)
    sdf = sdf.apply(count_words, stateful=True, expand=True)
    sdf = sdf.to_topic(counts)
    app.run()


if __name__ == "__main__":
    main()
