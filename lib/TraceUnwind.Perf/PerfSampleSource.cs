using TraceUnwind.Diagnostics;
using TraceUnwind.Model;

namespace TraceUnwind.Perf;

/// <summary>
/// The perf.data front end for the sample model: reads a perf.data stream (file or pipe mode,
/// either byte order, compressed or not), keeps every process's maps, and sends each sample with
/// its whole stack to a sink, in perf's time order. Calls <see cref="ISampleSink.Flush"/> when a
/// pipe goes quiet and <see cref="ISampleSink.Complete"/> at the end of the input.
/// </summary>
public sealed class PerfSampleSource : ISampleSource
{
    private readonly Stream _input;
    private readonly string _sourceName;
    private readonly PerfReadOptions _options;
    private readonly ErrorTally _tally;

    /// <param name="input">perf.data bytes from offset 0.</param>
    /// <param name="sourceName">Name for messages (path or <c>stdin</c>).</param>
    /// <param name="options">Unwinder, progress callback, limits.</param>
    /// <param name="tally">Where damaged or skipped input is counted.</param>
    public PerfSampleSource(Stream input, string sourceName, PerfReadOptions options, ErrorTally tally)
    {
        _input = input ?? throw new ArgumentNullException(nameof(input));
        _sourceName = sourceName;
        _options = options ?? new PerfReadOptions();
        _tally = tally ?? new ErrorTally();
    }

    /// <summary>The input's header information; set when <see cref="RunAsync"/> starts.</summary>
    public PerfSession? Session { get; private set; }

    /// <summary>The process model; set when <see cref="RunAsync"/> starts.</summary>
    public PerfProcessModel? Processes { get; private set; }

    /// <summary>
    /// Inputs at least this large (seekable, so the size is known) are read on one thread and
    /// formatted on another (<see cref="PipelinedSink"/>) when the machine has more than one CPU.
    /// Smaller ones, and pipes, run on the caller's flow alone. Tests set it to 0 to force the two threads.
    /// </summary>
    internal long PipelineMinBytes { get; set; } = 32L << 20;

    /// <inheritdoc/>
    /// <exception cref="TraceFormatException">The input is not perf.data or its header lies.</exception>
    public async Task RunAsync(ISampleSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        using var reader = new PerfRecordReader(_input, _sourceName, _options, _tally);
        Session = reader.Session;
        var pipeline = UsePipeline() ? new PipelinedSink(sink) : null;
        var builder = new PerfSampleBuilder(reader.Session, pipeline ?? (ISampleSink)sink, _options, _tally);
        Processes = builder.Processes;
        IPerfRecordHandler first = _options.RecordStage?.Invoke(reader.Session, builder) ?? builder;
        try
        {
            await reader.RunAsync(first, cancellationToken).ConfigureAwait(false);
        }
        catch when (pipeline is not null)
        {
            // The samples read so far still reach the sink (as they would have on one thread); a failure
            // of the sink itself, being about an earlier sample, wins over the front end's.
            pipeline.Finish(complete: false);
            throw;
        }
        if (pipeline is not null) pipeline.Finish(complete: true);
        else sink.Complete();
    }

    private bool UsePipeline()
    {
        if (Environment.ProcessorCount < 2 || !_input.CanSeek) return false;
        try
        {
            return _input.Length - _input.Position >= PipelineMinBytes;
        }
        catch (NotSupportedException)
        {
            return false;
        }
    }
}
